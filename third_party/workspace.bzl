"""External repositories for aioco, usable from aioco itself and from consumers.

    local_repository(name = "aioco", path = "...")
    load("@aioco//third_party:workspace.bzl", "aioco_workspace")
    aioco_workspace()

aioco_workspace() declares, each only if the workspace has not already
defined a repository of that name:

  * offline stand-ins for the repositories that Bazel 4.2.3's built-in
    WORKSPACE suffix would otherwise download (rules_cc, rules_java,
    remote_coverage_tools);
  * the C++ dependencies, taken from Debian packages and exposed under the
    names and labels upstream uses, so a consumer can point any of them at its
    own copy instead:
      @com_google_absl        libabsl-dev        //absl/<pkg>:<target>
      @com_google_googletest  libgtest-dev       //:gtest, //:gtest_main, //:gmock
      @com_google_benchmark   libbenchmark-dev   //:benchmark, //:benchmark_main
      @jemalloc               libjemalloc-dev    //:jemalloc
      @liburing               liburing-dev       //:liburing
      @boost                  libboost-*-dev     //:context, //:asio (benchmarks only)

System libraries are linked with -l flags and their headers come from the
compiler's default search path (/usr/include); nothing is downloaded.
"""

_RULES_CC_DEFS = """
def cc_binary(**kwargs):
    native.cc_binary(**kwargs)

def cc_library(**kwargs):
    native.cc_library(**kwargs)

def cc_test(**kwargs):
    native.cc_test(**kwargs)

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_proto_library(**kwargs):
    native.cc_proto_library(**kwargs)

def objc_library(**kwargs):
    native.objc_library(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)
"""

_RULES_JAVA_DEFS = """
def java_binary(**kwargs):
    native.java_binary(**kwargs)

def java_library(**kwargs):
    native.java_library(**kwargs)

def java_test(**kwargs):
    native.java_test(**kwargs)

def java_import(**kwargs):
    native.java_import(**kwargs)

def java_plugin(**kwargs):
    native.java_plugin(**kwargs)

def java_proto_library(**kwargs):
    native.java_proto_library(**kwargs)

def java_toolchain(**kwargs):
    native.java_toolchain(**kwargs)

def java_runtime(**kwargs):
    native.java_runtime(**kwargs)
"""

# Test rules depend on @remote_coverage_tools even when coverage is not being
# collected; `bazel coverage` itself is not supported offline.
_COVERAGE_BUILD = """
package(default_visibility = ["//visibility:public"])

sh_binary(name = "lcov_merger", srcs = ["unavailable.sh"])

sh_binary(name = "coverage_report_generator", srcs = ["unavailable.sh"])
"""

_COVERAGE_SH = """#!/bin/sh
echo "remote_coverage_tools is an offline stand-in: bazel coverage is unsupported" >&2
exit 1
"""

def _stub_repo_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", ctx.attr.build_file_content)
    for path, content in ctx.attr.files.items():
        ctx.file(path, content, executable = path.endswith(".sh"))

_stub_repo = repository_rule(
    implementation = _stub_repo_impl,
    attrs = {
        "build_file_content": attr.string(default = ""),
        "files": attr.string_dict(),
    },
)

def _find_libdir(ctx):
    """Returns the directory that holds the system's shared libraries."""
    candidates = []
    res = ctx.execute(["gcc", "-print-multiarch"])
    if res.return_code == 0 and res.stdout.strip():
        candidates.append("/usr/lib/" + res.stdout.strip())
    candidates += ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]
    for d in candidates:
        if ctx.path(d).exists:
            return ctx.path(d)
    fail("aioco: no system library directory found (tried %s)" % candidates)

def _require(ctx, libdir, files, package):
    for f in files:
        if not libdir.get_child(f).exists:
            fail(("aioco: %s/%s is missing. Install the Debian package '%s' " +
                  "(./tools/run.sh installs everything it needs).") % (libdir, f, package))

_ABSL_TARGETS = {
    "absl/base": ["base", "core_headers", "config", "log_severity", "dynamic_annotations"],
    "absl/cleanup": ["cleanup"],
    "absl/container": ["flat_hash_map", "flat_hash_set", "inlined_vector", "fixed_array", "btree", "node_hash_map"],
    "absl/debugging": ["stacktrace", "symbolize", "failure_signal_handler"],
    "absl/flags": ["flag", "parse", "usage", "marshalling"],
    "absl/functional": ["any_invocable", "function_ref", "bind_front"],
    "absl/hash": ["hash"],
    "absl/memory": ["memory"],
    "absl/numeric": ["bits", "int128"],
    "absl/random": ["random", "distributions"],
    "absl/status": ["status", "statusor"],
    "absl/strings": ["strings", "str_format", "cord"],
    "absl/synchronization": ["synchronization"],
    "absl/time": ["time"],
    "absl/types": ["span", "optional", "variant"],
    "absl/utility": ["utility"],
}

def _system_absl_impl(ctx):
    libdir = _find_libdir(ctx)
    _require(ctx, libdir, ["libabsl_base.so", "libabsl_status.so"], "libabsl-dev")
    if not ctx.path("/usr/include/absl/functional/any_invocable.h").exists:
        fail("aioco: /usr/include/absl is missing or too old. Install 'libabsl-dev' (20220623 or newer).")
    libs = sorted([
        p.basename[len("lib"):-len(".so")]
        for p in libdir.readdir()
        if p.basename.startswith("libabsl_") and p.basename.endswith(".so")
    ])
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", """
# Debian's libabsl-dev. All component libraries are shared objects, so linking
# every one of them costs only DT_NEEDED entries.
cc_library(
    name = "absl",
    linkopts = [%s],
    visibility = ["//visibility:public"],
)
""" % ", ".join(["\"-l%s\"" % l for l in libs]))
    for pkg, targets in _ABSL_TARGETS.items():
        ctx.file(pkg + "/BUILD.bazel", "\n".join([
            "alias(name = \"%s\", actual = \"//:absl\", visibility = [\"//visibility:public\"])" % t
            for t in targets
        ]) + "\n")

_system_absl = repository_rule(implementation = _system_absl_impl, local = True)

def _system_lib_impl(ctx):
    libdir = _find_libdir(ctx)
    _require(ctx, libdir, ctx.attr.required_files, ctx.attr.package)
    for h in ctx.attr.required_headers:
        if not ctx.path("/usr/include/" + h).exists:
            fail("aioco: /usr/include/%s is missing. Install the Debian package '%s'." % (h, ctx.attr.package))
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", ctx.attr.build_file_content)

_system_lib = repository_rule(
    implementation = _system_lib_impl,
    local = True,
    attrs = {
        "package": attr.string(mandatory = True),
        "required_files": attr.string_list(),
        "required_headers": attr.string_list(),
        "build_file_content": attr.string(mandatory = True),
    },
)

_GTEST_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "gtest", linkopts = ["-lgmock", "-lgtest", "-pthread"])

cc_library(name = "gtest_main", linkopts = ["-lgtest_main"], deps = [":gtest"])

alias(name = "gmock", actual = ":gtest")

cc_library(name = "gmock_main", linkopts = ["-lgmock_main"], deps = [":gtest"])
"""

_BENCHMARK_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "benchmark", linkopts = ["-lbenchmark", "-pthread"])

cc_library(name = "benchmark_main", linkopts = ["-lbenchmark_main"], deps = [":benchmark"])
"""

_JEMALLOC_BUILD = """
package(default_visibility = ["//visibility:public"])

# Linked as a shared object so that it replaces malloc for the whole process
# (used through --custom_malloc by --config=jemalloc).
cc_library(name = "jemalloc", linkopts = ["-ljemalloc"])
"""

_LIBURING_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "liburing", linkopts = ["-luring"])
"""

_BOOST_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "headers")

cc_library(name = "context", linkopts = ["-lboost_context"])

cc_library(name = "asio", linkopts = ["-pthread"])
"""

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def aioco_workspace():
    """Declares aioco's external repositories (each only if not yet defined)."""
    _maybe(_stub_repo, "rules_cc", files = {"cc/BUILD.bazel": "", "cc/defs.bzl": _RULES_CC_DEFS})
    _maybe(_stub_repo, "rules_java", files = {"java/BUILD.bazel": "", "java/defs.bzl": _RULES_JAVA_DEFS})
    _maybe(
        _stub_repo,
        "remote_coverage_tools",
        build_file_content = _COVERAGE_BUILD,
        files = {"unavailable.sh": _COVERAGE_SH},
    )
    _maybe(_system_absl, "com_google_absl")
    _maybe(
        _system_lib,
        "com_google_googletest",
        package = "libgtest-dev",
        required_files = ["libgtest.a", "libgtest_main.a", "libgmock.a"],
        required_headers = ["gtest/gtest.h"],
        build_file_content = _GTEST_BUILD,
    )
    _maybe(
        _system_lib,
        "com_google_benchmark",
        package = "libbenchmark-dev",
        required_files = ["libbenchmark.so", "libbenchmark_main.a"],
        required_headers = ["benchmark/benchmark.h"],
        build_file_content = _BENCHMARK_BUILD,
    )
    _maybe(
        _system_lib,
        "jemalloc",
        package = "libjemalloc-dev",
        required_files = ["libjemalloc.so"],
        required_headers = ["jemalloc/jemalloc.h"],
        build_file_content = _JEMALLOC_BUILD,
    )
    _maybe(
        _system_lib,
        "liburing",
        package = "liburing-dev",
        required_files = ["liburing.so"],
        required_headers = ["liburing.h"],
        build_file_content = _LIBURING_BUILD,
    )
    _maybe(
        _system_lib,
        "boost",
        package = "libboost-context-dev",
        required_files = ["libboost_context.so"],
        required_headers = ["boost/context/fiber.hpp", "boost/asio.hpp"],
        build_file_content = _BOOST_BUILD,
    )
