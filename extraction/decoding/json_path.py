"""Where in a JSON value the bytes decoded so far end: the mode (in a key, in a string,
after a value ...) and the open containers, fed one accepted token at a time. The
extractive constraint uses it to know when decoding is inside which field's string."""

from __future__ import annotations

_QUOTE = 34  # '"'

(_VALUE, _OBJ_FIRST, _ARR_FIRST, _KEY, _IN_KEY, _COLON, _IN_STR, _AFTER, _SCALAR,
 _DEAD) = range(10)
_ARRAY = None  # a frame of an array; an object's frame is its current key (str)


class PathTracker:
    """Where in a JSON value the bytes so far end: the mode and the open containers.

    Tolerant: bytes that no JSON could have lead to a dead mode instead of an error (it is
    also fed tokens the grammar would refuse, when checking them)."""

    __slots__ = ("mode", "frames", "key", "escaped")

    def __init__(self) -> None:
        self.mode = _VALUE
        self.frames: tuple[str | None, ...] = ()
        self.key = b""
        self.escaped = False

    def copy(self) -> PathTracker:
        other = PathTracker.__new__(PathTracker)
        other.mode, other.frames, other.key, other.escaped = (self.mode, self.frames,
                                                              self.key, self.escaped)
        return other

    def signature(self) -> tuple:
        return self.mode, self.frames, self.key, self.escaped

    @classmethod
    def at(cls, signature: tuple) -> PathTracker:
        tracker = cls()
        tracker.mode, tracker.frames, tracker.key, tracker.escaped = signature
        return tracker

    def step(self, byte: int) -> bool:
        """Feed one byte; True when it opened a value string."""
        mode = self.mode
        if mode == _IN_STR or mode == _IN_KEY:
            if self.escaped:
                self.escaped = False
            elif byte == 92:
                self.escaped = True
            elif byte == _QUOTE:
                if mode == _IN_KEY:
                    self.frames = self.frames[:-1] + (self.key.decode("utf-8", "replace"),)
                    self.mode, self.key = _COLON, b""
                else:
                    self.mode = _AFTER
                return False
            if mode == _IN_KEY:
                self.key += bytes((byte,))
            return False
        if byte in (32, 9, 10, 13):
            return False
        if mode == _VALUE or mode == _ARR_FIRST:
            if byte == 93 and mode == _ARR_FIRST:
                self._close(array=True)
            elif byte == 123:
                self.frames += ("",)
                self.mode = _OBJ_FIRST
            elif byte == 91:
                self.frames += (_ARRAY,)
                self.mode = _ARR_FIRST
            elif byte == _QUOTE:
                self.mode = _IN_STR
                return True
            else:
                self.mode = _SCALAR
        elif mode == _OBJ_FIRST or mode == _KEY:
            if byte == _QUOTE:
                self.mode, self.key = _IN_KEY, b""
            elif byte == 125 and mode == _OBJ_FIRST:
                self._close(array=False)
            else:
                self.mode = _DEAD
        elif mode == _COLON:
            self.mode = _VALUE if byte == 58 else _DEAD
        elif mode == _AFTER or mode == _SCALAR:
            if byte == 44 and self.frames:
                self.mode = _VALUE if self.frames[-1] is _ARRAY else _KEY
            elif byte == 93 or byte == 125:
                self._close(array=byte == 93)
            elif mode == _AFTER:
                self.mode = _DEAD
        return False

    def _close(self, *, array: bool) -> None:
        if self.frames and (self.frames[-1] is _ARRAY) == array:
            self.frames = self.frames[:-1]
            self.mode = _AFTER
        else:
            self.mode = _DEAD


def path_of(frames: tuple[str | None, ...]) -> str:
    """``("links", None, "host")`` -> ``links[].host`` (the pattern of ``extractive_fields``)."""
    path = ""
    for frame in frames:
        path += "[]" if frame is _ARRAY else (f".{frame}" if path else frame)
    return path
