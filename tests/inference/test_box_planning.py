import numpy as np
import pytest

from face_detection.boxes import pad_and_clip
from lipsync.box_planning import (
    FACE,
    NO_FACE,
    NOT_RUN,
    BoxPlanner,
    NoFaceError,
    fill_gaps,
    plan_boxes,
    smooth_boxes,
)
from lipsync.face_detections import FaceCounts
from lipsync.face_sources import CachedBoxes, GivenBox


def column(values):
    return np.repeat(np.array(values)[:, None], 4, axis=1)


def test_smoothing_is_the_references_in_place_forward_mean():
    # Worked by hand from the reference's smoothing: windows i..i+4, then the last five (already smoothed) ones.
    assert smooth_boxes(column([0, 10, 20, 30, 40, 50, 60]))[:, 0].tolist() == [20, 30, 40, 44, 46, 48, 47]
    # Fewer than five: the reference slices boxes[len - 5:], a negative start, so the last 5 - len boxes.
    assert smooth_boxes(column([0, 10, 20]))[:, 0].tolist() == [15, 15, 17]
    assert smooth_boxes(column([7]))[:, 0].tolist() == [7]


def test_pads_are_top_bottom_left_right_and_clipped_to_the_frame():
    # detector box x1, y1, x2, y2 -> y1, y2, x1, x2
    assert pad_and_clip([[5, 8, 30, 40]], (32, 36), (0, 10, 0, 0)).tolist() == [[8, 36, 5, 30]]
    assert pad_and_clip([[5, 8, 20, 20]], (32, 36), (3, 4, 6, 7)).tolist() == [[5, 24, 0, 27]]


def test_gaps_are_interpolated_copied_or_left_boxless():
    boxes = column([0, -1, -1, 30])
    status = [FACE, NO_FACE, NO_FACE, FACE]
    filled, has_box = fill_gaps(boxes, status, max_gap=2, on_no_face="interpolate")
    assert filled[:, 0].tolist() == [0, 10, 20, 30] and has_box.all()
    assert fill_gaps(boxes, status, max_gap=1, on_no_face="interpolate")[1].tolist() == [True, False, False, True]
    assert fill_gaps(boxes, status, max_gap=9, on_no_face="skip")[1].tolist() == [True, False, False, True]
    # frames the detector skipped are always filled, whatever the mode
    filled, has_box = fill_gaps(boxes, [FACE, NOT_RUN, NOT_RUN, FACE], max_gap=0, on_no_face="skip")
    assert filled[:, 0].tolist() == [0, 10, 20, 30] and has_box.all()
    # at the ends of the video a short gap copies its one neighbour
    filled, has_box = fill_gaps(column([-1, 12, -1]), [NO_FACE, FACE, NOT_RUN], 1, "interpolate")
    assert filled[:, 0].tolist() == [12, 12, 12] and has_box.all()


def test_boxless_frames_split_the_smoothing():
    boxes = column([0, 100, -1, -1, 50, 60])
    planned, has_box = plan_boxes(boxes, [FACE, FACE, NO_FACE, NO_FACE, FACE, FACE], (1000, 1000), (0, 0, 0, 0),
                                  on_no_face="skip")
    assert has_box.tolist() == [True, True, False, False, True, True]
    assert planned[has_box, 0].tolist() == [50, 75, 55, 57]  # [0, 100] and [50, 60] smoothed apart


@pytest.mark.parametrize("seed", range(6))
def test_streaming_planner_matches_planning_the_whole_video(seed):
    rng = np.random.default_rng(seed)
    n, stride = int(rng.integers(1, 120)), int(rng.integers(1, 4))
    status = rng.choice([FACE, NO_FACE], n, p=[0.8, 0.2])
    status[0] = FACE
    status[np.arange(n) % stride != 0] = NOT_RUN
    x = rng.integers(0, 200, n)
    boxes = np.stack([x, x + 5, x + 60, x + 70], 1)
    limit = int(rng.integers(1, n + 5))
    options = dict(frame_size=(300, 260), pads=(0, 10, 3, 0), on_no_face=str(rng.choice(["skip", "interpolate"])),
                   max_gap=int(rng.integers(0, 6)))
    expected, has_box = plan_boxes(boxes[:limit], status[:limit], **options)

    planner = BoxPlanner(**options, limit=limit, stride=stride)
    start = 0
    while start < n and not planner.finished:
        step = int(rng.integers(1, 20))
        planner.add(boxes[start:start + step], status[start:start + step])
        assert planner.ready <= planner.detected
        start += step
    planner.finish()
    count = min(n, limit)
    assert planner.ready == count
    got = [planner.box(i) for i in range(count)]
    assert got == [tuple(expected[i]) if has_box[i] else None for i in range(count)]


def test_error_mode_names_the_frame_and_its_time():
    planner = BoxPlanner((100, 100), (0, 10, 0, 0), on_no_face="error", fps=25)
    planner.add(column([1] * 60), [FACE] * 60)
    with pytest.raises(NoFaceError, match=r"frame 60 \(at 2\.40 s\)"):
        planner.add([None], [NO_FACE])


def test_a_video_without_any_face_is_an_error():
    planner = BoxPlanner((100, 100), (0, 10, 0, 0), on_no_face="skip")
    planner.add([None] * 3, [NO_FACE] * 3)
    with pytest.raises(NoFaceError, match="no face detected in any frame"):
        planner.finish()


def test_box_sources_return_what_they_counted():
    """A source yields each frame with its box, then its counts() say what it found: the
    caller adds them to its summary."""
    given = GivenBox((1, 2, 3, 4))
    assert list(given.boxed_frames(iter("abc"), 2)) == [(0, "a", (1, 2, 3, 4)), (1, "b", (1, 2, 3, 4))]
    assert given.counts() == FaceCounts(0, 0, 0, "off")
    boxes = [[10, 10, 50, 50], None, [10, 10, 50, 50], None, None, None, [10, 10, 50, 50]]
    status = [FACE, NO_FACE, FACE, NO_FACE, NO_FACE, NO_FACE, FACE]
    cached = CachedBoxes(BoxPlanner((100, 100), (0, 0, 0, 0), max_gap=1), (boxes, status))
    boxed = list(cached.boxed_frames(iter(range(7)), 7))
    assert [box is not None for _, _, box in boxed] == [True, True, True, False, False, False, True]
    assert cached.counts() == FaceCounts(detected=3, filled=1, passed_through=3, cache="hit")
