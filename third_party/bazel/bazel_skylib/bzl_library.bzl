"""Offline stand-in for bazel_skylib's bzl_library: documentation-only, so a no-op."""

def bzl_library(**kwargs):
    pass
