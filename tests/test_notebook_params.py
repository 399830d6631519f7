"""A chapter run with a bad papermill parameter stops at once with a message naming it.

This drives papermill itself (what `papermill notebooks/NN.ipynb out.ipynb -p noise 1.5` does),
so a chapter whose first cells stop validating their parameters fails here.
"""

from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "02_linear_probe.ipynb"


@pytest.mark.parametrize("parameters,message", [
    ({"noise": 1.5}, "'noise' = 1.5 is out of range"),
    ({"noise": "abc"}, "'noise' must be float"),
    ({"task": "imagenet"}, "'task' = 'imagenet' is unknown"),
    ({"scale": "huge"}, "'scale' = 'huge' is unknown"),
])
def test_bad_parameter_stops_the_chapter(parameters, message, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(CHAPTER), str(tmp_path / "out.ipynb"),
                                   parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(CHAPTER.parent))
    assert err.value.ename == "ConfigError"
    assert message in err.value.evalue
