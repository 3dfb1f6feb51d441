"""Test helpers for video files (not a test module)."""
import cv2


def count_video_frames(path: str) -> int:
    """Frames that OpenCV decodes from a video file (read through, not the header's count)."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise ValueError(f"video file unreadable: {path}")
        n = 0
        while cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()
