"""Paths of a test's Bazel runfiles, shared by the Python tests.

Under `bazel test` a data dependency lies at $TEST_SRCDIR/$TEST_WORKSPACE/<rel>;
run by hand from the workspace root it lies at ./<rel>.
"""

import os

RUNFILES = os.environ.get("TEST_SRCDIR", "")
WORKSPACE = os.environ.get("TEST_WORKSPACE", "aioco")


def runfile(rel):
    """The path of workspace-relative file `rel`; FileNotFoundError if absent."""
    for base in (os.path.join(RUNFILES, WORKSPACE), os.getcwd()):
        path = os.path.join(base, rel)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(rel)
