"""The lazy module proxy imports on first attribute access, and only then."""

from __future__ import annotations

import sys

import pytest

from lambdakit.lazy import LazyModule, is_loaded, lazy_import


@pytest.fixture
def unloaded_colorsys(monkeypatch: pytest.MonkeyPatch) -> None:
    """colorsys is a small stdlib module nothing here imports; make sure it starts unloaded."""
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)


@pytest.mark.usefixtures("unloaded_colorsys")
def test_given_proxy_when_not_used_then_module_is_not_imported() -> None:
    proxy = lazy_import("colorsys")

    assert "colorsys" not in sys.modules
    assert not is_loaded(proxy)
    assert "not loaded" in repr(proxy)


@pytest.mark.usefixtures("unloaded_colorsys")
def test_given_proxy_when_attribute_read_then_module_is_imported_and_attribute_returned() -> None:
    proxy = lazy_import("colorsys")

    hls = proxy.rgb_to_hls(1.0, 0.0, 0.0)

    assert "colorsys" in sys.modules
    assert is_loaded(proxy)
    assert hls == sys.modules["colorsys"].rgb_to_hls(1.0, 0.0, 0.0)
    assert isinstance(proxy, LazyModule)


def test_given_dotted_name_when_used_then_proxy_behaves_like_import_a_b() -> None:
    xml = lazy_import("xml.dom.minidom")

    document = xml.dom.minidom.parseString("<a>b</a>")

    assert document.documentElement.tagName == "a"


def test_given_missing_module_when_declared_then_error_only_at_first_use() -> None:
    proxy = lazy_import("lambdakit_no_such_module")

    with pytest.raises(ModuleNotFoundError):
        _ = proxy.anything


def test_given_real_module_when_asking_is_loaded_then_true() -> None:
    assert is_loaded(sys)


@pytest.mark.usefixtures("unloaded_colorsys")
def test_given_proxy_when_listing_names_then_real_module_names_are_listed() -> None:
    assert "rgb_to_hls" in dir(lazy_import("colorsys"))
