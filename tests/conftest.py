from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.config import Settings
from shared.localstack import LocalStack
from shared.runtime import set_runtime
from tests.helpers import cleanup_run, embedded_settings, new_run_id, real_settings


@pytest.fixture(autouse=True)
def _forget_runtime() -> Iterator[None]:
    yield
    set_runtime(None)


@pytest.fixture
def run_id() -> Iterator[str]:
    run = new_run_id()
    yield run
    cleanup_run(run)


@pytest.fixture
def real(run_id: str) -> Settings:
    """Settings on the real Redis and RabbitMQ, isolated for this test."""
    return real_settings(run_id)


def start_stack(settings: Settings) -> LocalStack:
    return LocalStack(settings, port=0, host="127.0.0.1").start()


@pytest.fixture
def embedded_stack() -> Iterator[LocalStack]:
    stack = start_stack(embedded_settings())
    yield stack
    stack.stop()


@pytest.fixture
def real_stack(real: Settings) -> Iterator[LocalStack]:
    stack = start_stack(real)
    yield stack
    stack.stop()
