from __future__ import annotations

import pickle

import pytest

import brickwork
from brickwork import errors


def all_errors():
    return [getattr(errors, n) for n in errors.__all__]


@pytest.mark.parametrize("cls", all_errors(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_fields(cls):
    if cls is errors.Overloaded:
        err = cls("queue full", retry_after_s=2.5)
    elif cls is errors.UpstreamError:
        err = cls("upstream 500", upstream_status=500)
    else:
        err = cls("something broke: 'x'")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err) and back.__dict__ == err.__dict__


def test_request_errors_carry_http_status_and_kind():
    assert errors.InvalidInput("x").status == 400
    assert errors.NotFound("x").status == 404
    assert errors.PayloadTooLarge("x").status == 413
    assert errors.ModelError("x").status == 500
    assert errors.UpstreamError("x").status == 502
    assert errors.Overloaded("x").status == 503
    assert errors.WorkerCrashed("x").status == 503
    assert errors.DeadlineExceeded("x").status == 504
    assert not errors.ModelError("x").is_machinery
    assert not errors.InvalidInput("x").is_machinery
    for cls in (errors.Overloaded, errors.WorkerCrashed, errors.DeadlineExceeded, errors.UpstreamError):
        assert cls("x").is_machinery


def test_build_and_request_errors_are_separate_branches():
    assert issubclass(errors.InterfaceMismatch, errors.BuildError)
    assert not issubclass(errors.InterfaceMismatch, errors.RequestError)
    assert issubclass(errors.ModelError, errors.RequestError)
    assert all(issubclass(c, brickwork.BrickworkError) for c in all_errors())


def test_tree_in_docstring_names_every_error():
    for cls in all_errors():
        assert cls.__name__ in errors.__doc__
