"""Reading audio tracks and frames from real videos, and the errors for bad ones."""
import pytest
import torch

from avsoundscape.audio import SAMPLE_RATE, load_audio
from avsoundscape.video import VideoError, probe_video, read_frames_at, read_video_audio, read_video_frames


@pytest.mark.parametrize("name", ["av.mp4", "av.webm", "av.mkv"])
def test_containers_give_audio_and_frames(media, name):
    info = probe_video(media / name)
    assert info.has_video and info.has_audio and (info.width, info.height) == (96, 64)
    wav = read_video_audio(media / name)
    assert wav.dtype == torch.float32 and abs(len(wav) / SAMPLE_RATE - 2.0) < 0.1
    frames, times = read_video_frames(media / name, fps=4, size=(32, 48))
    assert frames.shape == (8, 32, 48, 3) and frames.dtype == torch.uint8
    assert torch.allclose(times, torch.arange(8) / 4.0)


def test_frames_at_times_match_sequential_frames(media):
    frames, times = read_video_frames(media / "av.mp4", fps=2, size=32)
    at = read_frames_at(media / "av.mp4", times.tolist(), size=32)
    assert (at.float() - frames.float()).abs().mean() < 1.0
    # the test pattern moves: frames at different times differ
    assert (frames[0].float() - frames[-1].float()).abs().mean() > 1.0


def test_load_audio_reads_a_video_track(media):
    assert abs(len(load_audio(media / "av.mp4")) / SAMPLE_RATE - 2.0) < 0.1


def test_video_without_audio(media):
    assert not probe_video(media / "video_only.mp4").has_audio
    with pytest.raises(VideoError, match=r"video_only\.mp4: has no audio stream"):
        read_video_audio(media / "video_only.mp4")
    assert read_video_frames(media / "video_only.mp4", fps=1)[0].shape[0] == 2


def test_video_without_video_stream(media):
    with pytest.raises(VideoError, match=r"audio_only\.mp4: has no video stream"):
        read_video_frames(media / "audio_only.mp4")
    with pytest.raises(VideoError, match=r"audio_only\.mp4: has no video stream"):
        read_frames_at(media / "audio_only.mp4", [0.5])
    assert abs(len(read_video_audio(media / "audio_only.mp4")) / SAMPLE_RATE - 2.0) < 0.1


def test_truncated_mp4(media):
    for fn in (probe_video, read_video_audio, lambda p: read_video_frames(p)):
        with pytest.raises(VideoError, match=r"truncated\.mp4: cannot open as a video \(corrupt, truncated"):
            fn(media / "truncated.mp4")


def test_truncated_mp4_with_index_first(media):
    """The container opens (moov first), but the streams stop early: refused, not silently short."""
    with pytest.raises(VideoError, match=r"truncated_faststart\.mp4: .*corrupt or truncated"):
        read_video_audio(media / "truncated_faststart.mp4")
    with pytest.raises(VideoError, match=r"truncated_faststart\.mp4: .*corrupt or truncated"):
        read_video_frames(media / "truncated_faststart.mp4", fps=4)


def test_not_a_video_and_missing(media, tmp_path):
    with pytest.raises(VideoError, match=r"not_a_video\.mp4: cannot open"):
        read_video_frames(media / "not_a_video.mp4")
    with pytest.raises(VideoError, match=r"nope\.mp4: file not found"):
        probe_video(tmp_path / "nope.mp4")


def test_time_outside_the_video(media):
    with pytest.raises(VideoError, match="outside the video"):
        read_frames_at(media / "av.mp4", [5.0])
