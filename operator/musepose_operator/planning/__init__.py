"""Pure planning: from an Animation and the operator settings to the Job that runs it."""

from musepose_operator.planning.job import job_name, plan_job, plan_runner_document

__all__ = ["job_name", "plan_job", "plan_runner_document"]
