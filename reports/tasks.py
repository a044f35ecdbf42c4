"""Celery tasks of the monthly report digest: the beat run (every REPORT_DIGEST_CHECK_SECONDS)
and one delivery per digest row."""

from celery import shared_task

from . import digest


@shared_task(name=digest.DIGEST_TASK, ignore_result=True)
def run_digests() -> dict:
    return digest.run_digests()


@shared_task(name=digest.DELIVER_TASK, ignore_result=True, acks_late=True)
def deliver_digest(digest_id: int) -> str:
    return digest.deliver(digest_id)
