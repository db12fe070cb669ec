"""The SAM 3 backend: the sentence finds every instance, with ids; the words choose one."""

from .masker import Sam3Masker

__all__ = ["Sam3Masker"]
