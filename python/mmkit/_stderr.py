"""Progress written by the engine to file descriptor 2 (training, index builds), shown where
Python's own sys.stderr goes."""
import contextlib
import io
import os
import sys
import threading


@contextlib.contextmanager
def stderr_to_python():
    """The engine writes progress to file descriptor 2. Where sys.stderr is not that descriptor (a
    Jupyter notebook, pytest's capsys), forward what is written there to sys.stderr while the block
    runs, so the progress shows where Python's own output goes."""
    try:
        same = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        same = False
    if same:
        yield
        return
    saved = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)

    def pump():
        with os.fdopen(r, "rb", buffering=0) as f:
            while True:
                chunk = f.read(4096)
                if not chunk:
                    break
                sys.stderr.write(chunk.decode("utf-8", "replace"))
                sys.stderr.flush()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees end of file
        os.close(saved)
        t.join()
