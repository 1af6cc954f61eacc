"""Names from untrusted text never escape their folder and never overwrite anything."""

from __future__ import annotations

import os
import random
import threading
import unicodedata
from pathlib import Path

import pytest

from evolink_async._files.safe_paths import (
    UnsafePathError,
    create_unique,
    is_result_file_name,
    resolve_inside,
    result_file_name,
    safe_file_name,
    unique_path,
)
from evolink_async.errors import ValidationError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\x", "x"),
        ("C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("C:evil.png", "C_evil.png"),  # drive-relative on Windows
        ("\\\\server\\share\\x.png", "x.png"),  # UNC
        ("photos/", "photos"),
        (".bashrc", "bashrc"),
        ("...hidden.png", "hidden.png"),
        ("trailing. . ", "trailing"),
        ("a\x00b\n\r\t.png", "ab.png"),
        ('what?<is>"this"|*.png', "what__is__this___.png"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("nul.tar.gz", "_nul.tar.gz"),
        ("LPT9.png", "_LPT9.png"),
        ("COM\u00b9.png", "_COM1.png"),  # superscript one: Windows treats it as COM1 too
        ("CONSOLE.png", "CONSOLE.png"),
        # unicode tricks
        ("..\uff0f..\uff0fetc\uff0fpasswd", "passwd"),  # fullwidth solidus
        ("\u2025/\u2025/secret", "secret"),  # two-dot leader
        ("\uff0e\uff0e", "file"),  # fullwidth full stops
        ("photo\u202egnp.exe", "photognp.exe"),  # right-to-left override hiding the real suffix
        ("in\u200bvisible.png", "invisible.png"),  # zero-width space
        ("a\u2215b\u2044c.png", "a_b_c.png"),  # division and fraction slashes look like "/"
        ("caf\u0065\u0301.png", "caf\u00e9.png"),  # normalized to one form: one name per picture
        ("", "file"),
        (".", "file"),
        ("..", "file"),
        ("../..", "file"),
        ("   ", "file"),
        ("\x00\x01", "file"),
    ],
)
def test_safe_file_name(name: str, expected: str) -> None:
    assert safe_file_name(name, default="file") == expected


def test_long_names_keep_their_suffix_and_fit_any_file_system() -> None:
    long = safe_file_name("a" * 500 + ".png", default="file")
    assert len(long) == 200
    assert long.endswith(".png")
    wide = safe_file_name("\u00e9" * 300 + ".jpeg", default="file", max_length=1000)
    assert len(wide.encode()) <= 255
    assert wide.endswith(".jpeg")
    assert safe_file_name("CONx", default="file", max_length=3) == "_CO"
    assert safe_file_name("x" * 1_000_000, default="file") == "x" * 200


def test_default_is_cleaned_and_must_be_usable() -> None:
    assert safe_file_name("..", default="../result.png") == "result.png"
    with pytest.raises(ValueError, match="default"):
        safe_file_name("..", default="..")
    with pytest.raises(ValueError, match="max_length"):
        safe_file_name("a", default="b", max_length=0)


def test_any_string_becomes_one_component_inside_the_folder(tmp_path: Path) -> None:
    rng = random.Random(5)
    alphabet = "./\\:\x00\x1f \u202e\u200b\uff0f\uff3c\uff0e\u2025aZ0-_~$\u00e9\U0001f600"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        safe = safe_file_name(name, default="file")
        assert safe
        assert safe not in (".", "..")
        assert not set(safe) & set('/\\\x00:<>"|?*')
        assert not safe.startswith(".")
        assert unicodedata.normalize("NFKC", safe) == safe
        assert resolve_inside(tmp_path, safe).parent == tmp_path.resolve()


@pytest.mark.parametrize(
    "name", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x", "", ".", "sub/..", "x\x00.png"]
)
def test_resolve_inside_refuses_escapes(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError) as caught:
        resolve_inside(tmp_path, name)
    assert isinstance(caught.value, ValidationError)


def test_resolve_inside_accepts_names_that_stay_inside(tmp_path: Path) -> None:
    base = tmp_path.resolve()
    assert resolve_inside(tmp_path, "photo.png") == base / "photo.png"
    assert resolve_inside(tmp_path, "sub/../ok.png") == base / "ok.png"
    assert resolve_inside(tmp_path, "a/b/c.png") == base / "a" / "b" / "c.png"
    # On POSIX a backslash is an ordinary character: one odd-looking file, still inside.
    if os.sep == "/":
        assert resolve_inside(tmp_path, "..\\..\\x").parent == base


def test_symlinks_pointing_outside_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    (out / "link.png").symlink_to(secret)
    (out / "dir-link").symlink_to(tmp_path)
    (out / "dangling.png").symlink_to(tmp_path / "nowhere" / "x.png")
    (out / "inner.png").symlink_to(out / "real.png")

    for name in ["link.png", "dir-link/secret.txt", "dir-link/new.png", "dangling.png"]:
        with pytest.raises(UnsafePathError):
            resolve_inside(out, name)
    assert resolve_inside(out, "inner.png") == out.resolve() / "real.png"


def test_unique_path_picks_numbered_names(tmp_path: Path) -> None:
    dest = tmp_path / "photo.result-0.png"
    assert unique_path(dest) == dest
    dest.write_bytes(b"1")
    assert unique_path(dest) == tmp_path / "photo.result-0 (1).png"
    (tmp_path / "photo.result-0 (1).png").symlink_to(tmp_path / "nowhere")  # dangling links count as taken
    assert unique_path(dest) == tmp_path / "photo.result-0 (2).png"
    with pytest.raises(FileExistsError):
        unique_path(dest, max_tries=2)


def test_create_unique_never_overwrites_and_never_writes_through_links(tmp_path: Path) -> None:
    original = tmp_path / "photo.png"
    original.write_bytes(b"the user's input")
    outside = tmp_path / "outside.png"
    (tmp_path / "photo (1).png").symlink_to(outside)

    claimed = create_unique(original)
    assert claimed == tmp_path / "photo (2).png"
    assert claimed.read_bytes() == b""
    assert original.read_bytes() == b"the user's input"
    assert not outside.exists()


def test_create_unique_gives_racing_callers_distinct_files(tmp_path: Path) -> None:
    dest = tmp_path / "same.png"
    claimed: list[Path] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def claim() -> None:
        start.wait()
        path = create_unique(dest)
        with lock:
            claimed.append(path)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 16


@pytest.mark.parametrize(
    ("input_name", "index", "options", "expected"),
    [
        ("photo.jpg", 0, {}, "photo.result-0.png"),
        ("shots/cat.jpeg", 1, {"url": "https://files.example/x/abc.WEBP?sig=1#f"}, "cat.result-1.webp"),
        ("cat.png", 2, {"url": "https://files.example/x/abc.jpeg"}, "cat.result-2.jpg"),
        ("cat.png", 0, {"url": "https://files.example/x/abc.php"}, "cat.result-0.png"),
        ("cat.png", 0, {"url": "https://files.example/download?id=1"}, "cat.result-0.png"),
        ("cat.png", 0, {"url": "https://files.example/a%2F..%2Fb.gif"}, "cat.result-0.gif"),
        ("cat.png", 0, {"image_format": "jpeg", "url": "https://x/y.png"}, "cat.result-0.jpg"),
        ("../../etc/passwd", 0, {}, "passwd.result-0.png"),
        ("..", 3, {}, "image.result-3.png"),
        ("CON.png", 0, {}, "_CON.result-0.png"),
        ("archive.tar.gz", 0, {}, "archive.tar.result-0.png"),
    ],
)
def test_result_file_name(input_name: str, index: int, options: dict[str, str], expected: str) -> None:
    name = result_file_name(input_name, index, **options)  # type: ignore[arg-type]
    assert name == expected
    assert is_result_file_name(name)
    assert safe_file_name(name, default="x") == name


def test_result_names_never_equal_an_input_name() -> None:
    inputs = ["photo.png", "photo.result-0", "photo.result.png", "a.result-x.png", "b.jpg", "c", ".d"]
    assert not any(is_result_file_name(name) for name in inputs)  # what a batch keeps as inputs
    results = {result_file_name(name, i) for name in inputs for i in range(3)}
    assert not results & set(inputs)
    assert is_result_file_name("photo.result-0 (1).png")  # numbered copies are results too
    long = result_file_name("x" * 400 + ".png", 12)
    assert len(long) <= 200
    assert long.endswith(".result-12.png")
    with pytest.raises(ValueError, match="index"):
        result_file_name("a.png", -1)
