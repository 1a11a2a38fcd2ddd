"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test fetches get-pip.py from a host this machine cannot reach, and tells users to save
the script under ~/.ansible/test/cache/ instead. This one does the same job with the pip wheel
that CPython bundles for ensurepip: it runs that pip to install the pinned pip (from PyPI) into
the empty virtual environment ansible-test created. `make sanity` copies it into place.
"""

import glob
import os
import sys

import ensurepip


def main():
    bundled = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
    if not bundled:
        sys.exit("ensurepip has no bundled pip wheel; install python3-pip or save the real get-pip.py")
    sys.path.insert(0, sorted(bundled)[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    # get-pip's own flags: without them it also installs setuptools and wheel.
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if "--no-setuptools" not in sys.argv:
        args.append("setuptools")
    if "--no-wheel" not in sys.argv:
        args.append("wheel")
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall"] + args))


if __name__ == "__main__":
    main()
