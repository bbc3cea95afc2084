"""Offline stand-in for rules_proto: forwards to Bazel 4.2.3's native proto rules."""

load(":native.bzl", "NATIVE_PROTO_INFO")

ProtoInfo = NATIVE_PROTO_INFO

def proto_library(**kwargs):
    native.proto_library(**kwargs)

def proto_lang_toolchain(**kwargs):
    native.proto_lang_toolchain(**kwargs)
