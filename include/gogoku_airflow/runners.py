"""One Airflow task per `gogoku` CLI command, wherever it runs: the runner is chosen when it runs.

`gogoku_task(task_id, argv)` builds a `GogokuOperator` for `gogoku <argv>`; argv items may be Jinja
templates (e.g. an XCom pull of an upstream URI) or the whole argv an XComArg. Its `runner` field is
rendered when the task runs, from the Variable `gogoku_runner` (default `local`), so flipping the
Variable never changes the DAG (one DAG version), `airflow dags test` honours it, and the UI's
"Rendered Template" shows the runner that ran and, for the pod runners, the pod spec:
- `local`: a subprocess of the worker (local.py);
- `kubernetes`: a KubernetesPodOperator pod (pods.py), `gke`: a GKEStartPodOperator pod (gke.py);
- `isolated`: the kubernetes pod spec run on this machine in a sandbox (isolated.py; tests, staging).
Every runner gives the task the CLI's JSON result as its return value and the environment of
connection.py, resolved at run time. `profile` (cpu|gpu, may be a template) sizes the pod; the
local runner ignores it. Bad input (the CLI's exit status 2) and configuration errors fail the task
without retries; other failures get the task's retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gogoku_airflow.argv import finalize_argv

RUNNER_VARIABLE = "gogoku_runner"
RUNNERS = ("local", "kubernetes", "gke", "isolated")
POD_RUNNERS = ("kubernetes", "gke", "isolated")
API_POOL = "jquants_api"
RUNNER_TEMPLATE = f"{{{{ var.value.get('{RUNNER_VARIABLE}', 'local') }}}}"


def check_runner(value: Any) -> str:
    runner = str(value or "local").strip()
    if runner not in RUNNERS:
        raise AirflowFailException(f"Variable {RUNNER_VARIABLE}={runner!r}: expected one of {', '.join(RUNNERS)}")
    return runner


def _no_kube_config(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(s in text for s in ("ConfigException", "kube-config", "kubeconfig", "Invalid kube-config",
                                   "Service host/port is not set", "conn_id `kubernetes_default` isn't defined"))


class GogokuOperator(BaseOperator):
    """Run one `gogoku` CLI command with the runner of the Variable `gogoku_runner`; returns its JSON result."""

    template_fields: Sequence[str] = ("argv", "plan_tier", "profile", "runner", "pod_spec")
    template_fields_renderers = {"argv": "py", "pod_spec": "yaml"}
    # The pod spec is known only once the task builds its pod: send the rendered fields again after it.
    overwrite_rtif_after_execution = True
    ui_color = "#e8f4ea"

    def __init__(self, *, argv: Any, plan_tier: str | None = None, profile: str = "cpu",
                 runner: str = RUNNER_TEMPLATE, pod_callbacks: Any = None,
                 pod_attributes: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.argv = argv
        self.plan_tier = plan_tier
        self.profile = profile
        self.runner = runner
        self.pod_spec = ""
        self.pod_callbacks = pod_callbacks
        # Set on the pod operator once built (tests stand in for the GKE API's cluster lookup with it).
        self.pod_attributes = dict(pod_attributes or {})
        self._running: Any = None

    def execute(self, context: Any) -> dict[str, Any]:
        runner = check_runner(self.runner)
        argv = finalize_argv(self.argv)
        self.log.info("gogoku runner: %s (Variable %s)", runner, RUNNER_VARIABLE)
        if runner == "local":
            from gogoku_airflow.connection import cli_env
            from gogoku_airflow.local import CliProcess, run_local

            self._running = CliProcess()
            return run_local(argv, cli_env(self.plan_tier or None), self.log, self._running)
        pod_op = self._pod_operator(runner, argv)
        self._running = pod_op
        try:
            self.pod_spec = self._describe(pod_op, context)
            # Run as the task runner runs an operator (the sentinel says it is not a stray call).
            from airflow.sdk.bases.operator import ExecutorSafeguard

            return pod_op.execute(context, **{f"{type(pod_op).__name__}__sentinel": ExecutorSafeguard.sentinel_value})
        except (AirflowFailException, AirflowException):
            raise
        except Exception as exc:
            if _no_kube_config(exc):
                raise AirflowFailException(
                    f"{runner} runner: no Kubernetes configuration ({exc}); set the connection kubernetes_default "
                    "(extra in_cluster: true inside the cluster, or kube_config_path / kube_config) or "
                    f"the Variable {RUNNER_VARIABLE}=local"
                ) from None
            raise

    def _pod_operator(self, runner: str, argv: list[str]) -> Any:
        from gogoku_airflow.podspec import pod_kwargs

        kwargs = pod_kwargs(task_id=self.task_id, argv=argv, plan_tier=self.plan_tier, profile=self.profile,
                            callbacks=self.pod_callbacks)
        if runner == "kubernetes":
            from gogoku_airflow.pods import GogokuPodOperator

            op = GogokuPodOperator(**kwargs)
        elif runner == "gke":
            from gogoku_airflow.gke import GogokuGKEPodOperator, gke_cluster

            op = GogokuGKEPodOperator(**kwargs, **gke_cluster())
        else:
            from gogoku_airflow.isolated import GogokuIsolatedPodOperator

            op = GogokuIsolatedPodOperator(**kwargs)
        op.__dict__.update(self.pod_attributes)
        return op

    def _describe(self, pod_op: Any, context: Any) -> str:
        """The pod spec this task runs, for the UI's rendered template and the log."""
        from kubernetes.client import ApiClient

        pod_op._finalize()
        pod = pod_op.build_pod_request_obj(context, dry_run=True)
        text = yaml.safe_dump(ApiClient().sanitize_for_serialization(pod), sort_keys=False)
        self.log.info("pod spec:\n%s", text)
        return text

    def on_kill(self) -> None:
        if self._running is not None:
            (getattr(self._running, "stop", None) or self._running.on_kill)()


def gogoku_task(
    task_id: str,
    argv: Any,
    *,
    plan_tier: str | None = None,
    profile: str = "cpu",
    map_argv: bool = False,
    **kwargs: Any,
) -> Any:
    """A task running `gogoku <argv>`; kwargs go to the operator (`pod_callbacks` to the pod operator).
    `plan_tier` None: the Variable `gogoku_plan_tier` when the task runs.

    With `map_argv=True`, `argv` is a list of argv lists (an XCom) and the task is mapped over it:
    one task instance (one pod) per command; an empty list skips the task."""
    if map_argv:
        return GogokuOperator.partial(task_id=task_id, plan_tier=plan_tier, profile=profile, **kwargs).expand(argv=argv)
    return GogokuOperator(task_id=task_id, argv=argv, plan_tier=plan_tier, profile=profile, **kwargs)


def result_field(task_id: str, key: str) -> str:
    """A template of one field of an upstream gogoku task's JSON result (e.g. the pod profile a
    `--plan-only` task chose), for a templated operator field such as `profile`."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')['{key}'] }}}}"


def cache_refresh_task(task_id: str, source: str, start: str, end: str, **kwargs: Any) -> BaseOperator:
    """`gogoku cache refresh` for one source, in the API pool (the pool bounds concurrent API use)."""
    argv = ["cache", "refresh", "--sources", source, "--start", start, "--end", end]
    return gogoku_task(task_id, argv, pool=API_POOL, **kwargs)
