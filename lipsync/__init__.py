"""The inference pipeline: a face video (or image) and speech in, a lip-synced video out.

    options           Options: what a run is asked to do (inference.py's flags), and its checks
    pipeline          lip_sync(): the three stages wired together
    frames            the input frames, prepared, looped or stretched
    audio_chunks      the speech's mel spectrogram and each output frame's chunk
    face_sources      each frame's box: a fixed --box, the face cache, or S3FD
    box_planning      detections -> crop boxes: gaps, pads, smoothing, as they stream
    detection_cache   detections kept on disk (--face_cache)
    generator         Wav2Lip loaded for inference, run under the chosen precision
    onnx_generator    the same on onnxruntime, without PyTorch
    stage_clock       where a run's time goes, stage by stage
    compose           generated faces pasted (or feathered) back into the frames
    threads           stage threads, bounded channels, worker pools
    heap              glibc's allocator: freed memory kept for reuse, or given back
    sync_similarity   the expert's voice/face agreement, before and after
    batch             many (video, audio) pairs, resumably (the evaluation generators)
    stream            LipSyncStream: audio pushed as it arrives, lip-synced frames out (realtime or not)
    stream_audio      pushed audio -> utterances -> each frame's mel chunk, as the file pipeline cuts them
    stream_face       the stream's face, prepared once: boxes, crops, frames looped
    stream_pacing     realtime: when each frame leaves, and which frames the generator draws in time
    stream_run        stream.py's work: audio from a file or standard input, the stream into an mp4
"""

from lipsync.options import Options
from lipsync.pipeline import Summary, lip_sync, sync_json_path

__all__ = ["Options", "Summary", "lip_sync", "sync_json_path"]
