"""The reference inference pipeline written out plainly, step by step as it runs, for comparison.

Everything is held in memory, one step after another, with the unfused generator in fp32:
an independent statement of what inference must produce.
"""

import cv2
import numpy as np
import torch

import audio
from models import Wav2Lip


def load_generator(path):
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model = Wav2Lip()
    model.load_state_dict({k.replace("module.", "", 1): v for k, v in state.items()})
    return model.eval()


def reference_frames(checkpoint, frames, wav_path, fps, detections, pads=(0, 10, 0, 0), nosmooth=False,
                     static=False, box=None, batch_size=128):
    """Output frames for ``frames`` (already resized/rotated/cropped) and per-frame detector boxes."""
    mel = audio.melspectrogram(audio.load_wav(wav_path, 16000))
    chunks, step, i = [], 80.0 / fps, 0
    while True:
        start = int(i * step)
        if start + 16 > mel.shape[1]:
            chunks.append(mel[:, mel.shape[1] - 16:])
            break
        chunks.append(mel[:, start:start + 16])
        i += 1

    frames = frames[:len(chunks)]
    if box is not None:
        coords = [tuple(box)] * len(frames)
    else:
        used = [detections[0]] if static else detections[:len(frames)]
        top, bottom, left, right = pads
        rows = []
        for rect, image in zip(used, frames):
            assert rect is not None, "face not detected"
            rows.append([max(0, rect[0] - left), max(0, rect[1] - top),
                         min(image.shape[1], rect[2] + right), min(image.shape[0], rect[3] + bottom)])
        boxes = np.array(rows, dtype=np.int64)
        if not nosmooth:
            for k in range(len(boxes)):
                window = boxes[len(boxes) - 5:] if k + 5 > len(boxes) else boxes[k:k + 5]
                boxes[k] = np.mean(window, axis=0)
        coords = [(y1, y2, x1, x2) for x1, y1, x2, y2 in boxes]

    model = load_generator(checkpoint)
    out = []
    for first in range(0, len(chunks), batch_size):
        faces, mels, originals, where = [], [], [], []
        for k in range(first, min(first + batch_size, len(chunks))):
            index = 0 if static else k % len(frames)
            y1, y2, x1, x2 = coords[index]
            faces.append(cv2.resize(frames[index][y1:y2, x1:x2], (96, 96)))
            mels.append(chunks[k])
            originals.append(frames[index].copy())
            where.append((y1, y2, x1, x2))
        faces = np.asarray(faces)
        masked = faces.copy()
        masked[:, 48:] = 0
        x = np.concatenate((masked, faces), axis=3) / 255.0
        x = torch.FloatTensor(np.transpose(x, (0, 3, 1, 2)))
        m = torch.FloatTensor(np.asarray(mels)[:, None])
        with torch.no_grad():
            pred = model(m, x).numpy().transpose(0, 2, 3, 1) * 255.0
        for p, frame, (y1, y2, x1, x2) in zip(pred, originals, where):
            frame[y1:y2, x1:x2] = cv2.resize(p.astype(np.uint8), (x2 - x1, y2 - y1))
            out.append(frame)
    return out
