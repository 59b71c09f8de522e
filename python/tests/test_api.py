"""The type stubs (mmkit/__init__.pyi) describe the package as it is, and help() has text for it."""
import ast
import inspect
import os

import mmkit


def stub_tree():
    path = os.path.join(os.path.dirname(mmkit.__file__), "__init__.pyi")
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read())


def test_every_stub_names_something_real_and_every_export_has_a_stub():
    tree = stub_tree()
    stubbed = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            stubbed.add(node.name)
            assert callable(getattr(mmkit, node.name)), node.name
        elif isinstance(node, ast.ClassDef):
            stubbed.add(node.name)
            cls = getattr(mmkit, node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not (item.name.startswith("__") and item.name != "__len__"):
                    assert hasattr(cls, item.name), f"{node.name}.{item.name}"
    exported = {n for n in mmkit.__all__ if n != "__version__"}
    assert exported <= stubbed | {"__version__"}, exported - stubbed


def test_public_callables_have_docstrings_with_signatures():
    for name in mmkit.__all__:
        obj = getattr(mmkit, name)
        if inspect.isclass(obj):
            members = [getattr(obj, m) for m in dir(obj) if not m.startswith("_")]
            for m in members:
                if callable(m):
                    assert m.__doc__ and len(m.__doc__.strip()) > 20, f"{name}.{m.__name__} has no docstring"
        elif callable(obj):
            assert obj.__doc__ and len(obj.__doc__.strip()) > 20, f"{name} has no docstring"
