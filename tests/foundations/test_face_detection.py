import math

import numpy as np
import pytest
import torch
from support.synthetic_weights import save_released, seeded

import face_detection
from face_detection import (
    S3FD,
    S3FDDetector,
    best_box,
    candidate_boxes,
    kept_boxes,
    nms,
)
from face_detection.boxes import to_int_box
from face_detection.detect import prepare_frames
from system.errors import UserError

STRIDES = (4, 8, 16, 32, 64, 128)


def empty_heads(batch, height, width):
    """Head outputs for an image of height x width in which nothing looks like a face."""
    heads = []
    for stride in STRIDES:
        h, w = math.ceil(height / stride), math.ceil(width / stride)
        cls = torch.zeros(batch, 2, h, w)
        cls[:, 0] = 10.0  # background
        heads += [cls, torch.zeros(batch, 4, h, w)]
    return heads


def naive_candidates(heads, image):
    """The reference's post-processing, one candidate at a time: what the reference computes for ``image``."""
    rows = []
    for level, stride in enumerate(STRIDES):
        probability = torch.softmax(heads[2 * level], dim=1)[:, 1]
        for _, r, c in zip(*np.where(probability.numpy() > 0.05)):
            loc = heads[2 * level + 1][image, :, r, c].double().numpy()
            cx, cy, size = stride / 2 + c * stride, stride / 2 + r * stride, 4.0 * stride
            cx, cy = cx + loc[0] * 0.1 * size, cy + loc[1] * 0.1 * size
            w, h = size * math.exp(loc[2] * 0.2), size * math.exp(loc[3] * 0.2)
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, probability[image, r, c].item()])
    return np.array(rows).reshape(-1, 5)


def test_decoding_a_hand_made_head():
    heads = empty_heads(1, 128, 128)
    # Stride 16 (head 3), row 2, column 3: prior centre (56, 40), size 64.
    heads[4][0, :, 2, 3] = torch.tensor([0.0, math.log(9.0)])  # face probability 0.9
    heads[5][0, :, 2, 3] = torch.tensor([1.0, -1.0, 5 * math.log(2.0), 0.0])  # shift (6.4, -6.4), width x2
    boxes = candidate_boxes(heads)
    assert boxes.shape == (1, 1, 5) and boxes.dtype == np.float32
    np.testing.assert_allclose(boxes[0, 0], [62.4 - 64, 33.6 - 32, 62.4 + 64, 33.6 + 32, 0.9], rtol=1e-6)
    np.testing.assert_allclose(best_box(boxes[0]), boxes[0, 0])
    assert to_int_box(best_box(boxes[0])) == (0, 1, 126, 65)  # x1 = -1.6 clipped to 0, the rest truncated


def test_nothing_above_the_thresholds_means_no_face():
    heads = empty_heads(2, 64, 64)
    assert candidate_boxes(heads).shape == (2, 0, 5)
    assert best_box(candidate_boxes(heads)[0]) is None
    heads[2][1, :, 0, 0] = torch.tensor([0.0, 0.0])  # probability 0.5: a candidate, but not > 0.5
    boxes = candidate_boxes(heads)
    assert boxes.shape == (2, 1, 5)
    assert best_box(boxes[0]) is None and best_box(boxes[1]) is None
    assert kept_boxes(boxes[1]).shape == (0, 5)


def test_vectorised_decoding_equals_the_one_candidate_at_a_time_computation():
    torch.manual_seed(0)
    heads = [torch.randn(3, c, math.ceil(72 / s), math.ceil(96 / s)) * (1.5 if c == 2 else 1.0)
             for s in STRIDES for c in (2, 4)]
    boxes = candidate_boxes(heads)
    for image in range(3):
        # Same rows in the same order: every position that is a candidate in *any* image.
        np.testing.assert_allclose(boxes[image], naive_candidates(heads, image), rtol=1e-5, atol=1e-4)
    assert boxes.shape[1] > max((boxes[i][:, 4] > 0.05).sum() for i in range(3))  # the union, not each alone


def test_nms_on_boxes_with_known_overlaps():
    dets = np.array([
        [0, 0, 9, 9, 0.9],  # 10 x 10 with the +1 convention
        [0, 0, 9, 4, 0.8],  # overlap 50 / (100 + 50 - 50) = 0.5 -> suppressed by box 0
        [5, 0, 14, 9, 0.7],  # overlap 50 / 150 = 0.333 -> suppressed
        [7, 0, 16, 9, 0.6],  # overlap 30 / 170 = 0.176 -> kept
        [100, 100, 120, 120, 0.95],  # far away -> kept, and first
        [8, 0, 17, 9, 0.55],  # overlap with box 3: 90 / 110 -> suppressed by it
    ], np.float32)
    assert nms(dets, 0.3) == [4, 0, 3]
    assert nms(dets, 0.34) == [4, 0, 2]  # box 2 survives at a looser threshold and then suppresses 3 (0.6 IoU)
    assert nms(np.zeros((0, 5), np.float32)) == []
    np.testing.assert_array_equal(kept_boxes(dets), dets[[4, 0, 3]])
    np.testing.assert_array_equal(best_box(dets), dets[4])


def test_best_box_is_the_first_box_nms_keeps():
    rng = np.random.default_rng(1)
    for _ in range(20):
        corners = rng.uniform(0, 200, size=(40, 2))
        dets = np.concatenate([corners, corners + rng.uniform(5, 80, size=(40, 2)), rng.uniform(0, 1, (40, 1))], 1)
        kept = kept_boxes(dets.astype(np.float32))
        best = best_box(dets.astype(np.float32))
        assert (best is None and len(kept) == 0) or np.array_equal(best, kept[0])


def test_network_heads_and_the_max_out_of_background_logits():
    net = seeded(S3FD(), seed=0)
    raw = {}
    net.conv3_3_norm_mbox_conf.register_forward_hook(lambda module, args, output: raw.setdefault("cls1", output))
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in out] == [
        (2, 16, 24), (4, 16, 24), (2, 8, 12), (4, 8, 12), (2, 4, 6), (4, 4, 6),
        (2, 6, 7), (4, 6, 7), (2, 3, 4), (4, 3, 4), (2, 2, 2), (4, 2, 2),  # fc6's padding of 3 grows its map by 4
    ]
    torch.testing.assert_close(out[0][:, 0], raw["cls1"][:, :3].max(dim=1).values)
    torch.testing.assert_close(out[0][:, 1], raw["cls1"][:, 3])


def test_frames_are_flipped_to_rgb_then_mean_subtracted():
    frames = np.zeros((1, 2, 2, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 10, 20, 30  # B, G, R
    x = prepare_frames(frames, "cpu")
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == [30 - 104, 20 - 117, 10 - 123]


@pytest.fixture(scope="module")
def s3fd_file(tmp_path_factory):
    net = seeded(S3FD(), seed=7)
    with torch.no_grad():  # a bias towards "face" in every head, so that the seeded net finds some
        for name in ("conv4_3_norm_mbox_conf", "conv5_3_norm_mbox_conf", "fc7_mbox_conf"):
            getattr(net, name).bias.copy_(torch.tensor([0.0, 1.5]))
    return save_released(net, tmp_path_factory.mktemp("sfd") / "s3fd.pth", module_prefix=False, wrapped=False)


def test_face_alignment_entry_point_matches_the_reference_pipeline(s3fd_file):
    fa = face_detection.FaceAlignment(face_detection.LandmarksType._2D, flip_input=False, device="cpu",
                                      path_to_detector=str(s3fd_file))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 80, 112, 3), dtype=np.uint8)
    results = fa.get_detections_for_batch(frames)
    assert len(results) == 3
    net = S3FD()
    net.load_state_dict(torch.load(s3fd_file, weights_only=True))
    with torch.no_grad():
        x = torch.from_numpy(frames[..., ::-1].astype(np.int64) - np.array([104, 117, 123])).permute(0, 3, 1, 2).float()
        heads = net.eval()(x)
    found = 0
    for image, result in enumerate(results):
        candidates = naive_candidates(heads, image)
        keep = [i for i in nms(candidates, 0.3) if candidates[i, 4] > 0.5]
        if not keep:
            assert result is None
            continue
        found += 1
        x1, y1, x2, y2 = np.clip(candidates[keep[0], :4], 0, None)
        # The CPU detector runs the network a frame at a time: equal up to float rounding
        # (these random weights give huge boxes, so rounding shows in the last digits).
        assert np.allclose(result, (int(x1), int(y1), int(x2), int(y2)), rtol=1e-4, atol=1)
        assert all(isinstance(v, int) for v in result)
    assert found > 0


def test_detector_halves_its_batch_on_out_of_memory(s3fd_file, capsys):
    detector = S3FDDetector("cpu", s3fd_file, batch_size=8)
    frames = np.random.default_rng(2).integers(0, 255, size=(5, 48, 48, 3), dtype=np.uint8)
    # Ties at a score of exactly 1.0 are broken by the order of the batch's candidates (as in the
    # reference), so the expectation is detection in the batches the halving ends up with.
    expected = [None if b is None else b.tolist() for b in S3FDDetector("cpu", s3fd_file, batch_size=2).detect(frames)]
    real, sizes = detector.candidates, []

    def limited(chunk):
        sizes.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(chunk)

    detector.candidates = limited
    got = [None if b is None else b.tolist() for b in detector.detect(frames)]
    assert sizes == [5, 2, 2, 1] and detector.batch_size == 2
    assert "batch size now 2" in capsys.readouterr().err
    assert got == expected and any(box is not None for box in got)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(face_detection.detect, "DEFAULT_WEIGHTS", tmp_path / "sfd" / "s3fd.pth")
    with pytest.raises(UserError, match=r"S3FD face-detector weights not found at .*s3fd.pth: download s3fd.pth "
                                        r"\(face-alignment's s3fd-619a316812.pth is the same file\) and put it there, "
                                        r"or pass its path with --detector_checkpoint_path$"):
        face_detection.FaceAlignment(face_detection.LandmarksType._2D, device="cpu")
    with pytest.raises(UserError, match="weights not found at .*elsewhere.pth"):
        S3FDDetector("cpu", tmp_path / "elsewhere.pth")


def test_default_weight_location_is_the_references():
    assert face_detection.DEFAULT_WEIGHTS.parts[-4:] == ("face_detection", "detection", "sfd", "s3fd.pth")


def test_detector_gives_up_at_once_when_one_frame_does_not_fit(s3fd_file):
    detector = S3FDDetector("cpu", s3fd_file, batch_size=8)
    calls = []

    def out_of_memory(chunk):
        calls.append(len(chunk))
        raise torch.OutOfMemoryError("CUDA out of memory")

    detector.candidates = out_of_memory
    with pytest.raises(UserError, match="out of GPU memory detecting faces in a single frame"):
        detector.detect(np.zeros((1, 32, 32, 3), np.uint8))
    assert calls == [1]
