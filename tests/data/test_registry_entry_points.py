"""An outside package adds a dataset adapter through the `vilem.datasets` entry-point group,
with a real (throwaway) distribution on sys.path, not by patching the registry."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_entry_point_adapter_is_discovered(tmp_path: Path):
    pkg = tmp_path / "vilem_extra_ds"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from vilem.data.base import DatasetAdapter, Split

            class Extra(DatasetAdapter):
                name = "extra-ds"
                modality = "image"
                splits = ("test",)
                description = "a plug-in dataset"

                def _load(self, split):
                    return Split(self.name, split, self.root, "image", ["a"],
                                 [self.root / "a.png"], ["a caption"], [0], "rev0")
            """
        )
    )
    dist = tmp_path / "vilem_extra_ds-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vilem-extra-ds\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vilem.datasets]\nextra-ds = vilem_extra_ds:Extra\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    code = (
        "from vilem.data import load_split; "
        f"s = load_split('extra-ds', 'test', root={str(tmp_path)!r}); print(s.dataset, s.texts)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "extra-ds ['a caption']" in out.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "vilem", "datasets"], env=env, capture_output=True, text=True
    )
    assert "a plug-in dataset" in listed.stdout, listed.stderr
