"""Builds the extension with the project's CMake build (python/CMakeLists.txt) and packages
python/mmkit/ around it. The CMake build folder is `build/` (what scripts/setup.sh builds), or
$MMKIT_BUILD_DIR, so an install after the set-up only links the module."""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(mmkit VERSION ([0-9.]+)", f.read())
    if not m:
        raise RuntimeError("CMakeLists.txt: project(mmkit VERSION x.y.z) not found")
    return m.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.environ.get("MMKIT_BUILD_DIR", os.path.join(ROOT, "build"))
        # A venv's interpreter runs on its base Python, whose headers the module is built against.
        python = getattr(sys, "_base_executable", sys.executable) or sys.executable
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                               f"-DPython_EXECUTABLE={python}"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "_mmkit", "-j", jobs])
        built = glob.glob(os.path.join(build_dir, "python", "mmkit", "_mmkit*.so"))
        if not built:
            raise RuntimeError(f"the CMake build did not produce {build_dir}/python/mmkit/_mmkit*.so "
                               "(is pybind11-dev installed? scripts/setup.sh installs it)")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    version=version(),
    packages=["mmkit"],
    package_dir={"mmkit": "python/mmkit"},
    package_data={"mmkit": ["*.pyi", "py.typed"]},
    ext_modules=[Extension("mmkit._mmkit", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
