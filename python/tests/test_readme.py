"""README's "From Python" example runs as written."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(capsys):
    text = README.read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "itlin.Mlp" in code and "itlin.train" in code
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["K"].shape == (320, 320)
    assert scope["delta"].shape == (scope["net"].n_params,)
    assert scope["rep"].converged
    np.testing.assert_allclose(scope["rep"].x, [1.0, 1.0], atol=1e-8)
    assert len(scope["run"]) >= 1
    assert "(320, 320)" in capsys.readouterr().out
