"""Re-exports the built-in ProtoInfo under another name (defs.bzl cannot write `ProtoInfo = ProtoInfo`)."""

NATIVE_PROTO_INFO = ProtoInfo
