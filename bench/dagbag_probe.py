"""Load DAG files in an Airflow DagBag and report time, memory and what was rendered, as JSON.

    <python> bench/dagbag_probe.py PATH [PATH ...] [--serialize] [--gc-frozen]

Run by bench/parse_cost.py, one fresh process per measurement, with whichever
virtualenv's Python is measured (ours or cosmos'); standard library + Airflow only.
The process first imports Airflow (the DAG processor has it imported before it
parses a file), then times only `DagBag(dag_folder=PATH)` for each PATH (a
folder or one file). With --serialize it then also times what the DAG processor
does next with every DAG (DagSerialization.to_dict), outside the DagBag figure.
With --gc-frozen it calls gc.freeze() after the imports, as the DAG processor's
manager does before it forks the process that parses a file (manager.py,
before_run): the collector then never scans Airflow's own objects during a parse.

Prints a JSON line as soon as the DagBag is loaded (the caller stops its wall
clock there): the process's age when this script started (`started_s`, from
/proc: interpreter start-up), the import and DagBag times, peak RSS before and
after the DagBag (VmHWM, KiB; a subprocess a DAG file runs is not
counted), per DAG its task count by operator class, and import errors.
With --serialize a second line follows. It leaves with os._exit: interpreter
teardown is no part of a parse.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

T0 = time.perf_counter()
MARK = "@@dagbag_probe "  # prefixes the result lines


def _process_age() -> float:
    """Seconds since this process started (from /proc/self/stat), so the whole-process
    figure includes interpreter start-up."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _hwm_kib() -> int:
    """Peak RSS of this process's own memory (VmHWM). Not ru_maxrss: after fork + exec, Linux carries the
    parent's peak into the child's ru_maxrss, so a probe started by a big parent would report the parent."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> None:
    serialize = "--serialize" in argv
    paths = [a for a in argv if not a.startswith("--")]
    started = _process_age() - (time.perf_counter() - T0)  # age at T0: interpreter start + site

    t = time.perf_counter()
    import airflow  # noqa: F401
    import airflow.sdk  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag

    imports_s = time.perf_counter() - t
    if "--gc-frozen" in argv:
        import gc

        gc.freeze()
    rss_before = _hwm_kib()

    t, cpu = time.perf_counter(), time.process_time()
    bags = [DagBag(dag_folder=p) for p in paths]
    t_end, cpu_end = time.perf_counter(), time.process_time()
    dagbag_s, dagbag_cpu_s = t_end - t, cpu_end - cpu
    rss_after = _hwm_kib()

    dags: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for bag in bags:
        for dag_id, dag in bag.dags.items():
            types: dict[str, int] = {}
            for task in dag.tasks:
                types[type(task).__name__] = types.get(type(task).__name__, 0) + 1
            dags[dag_id] = {"tasks": len(dag.tasks), "types": types}
        errors.update({str(k): str(v)[-2000:] for k, v in bag.import_errors.items()})
    result = {
        "started_s": started,
        "imports_s": imports_s,
        "dagbag_s": dagbag_s,
        "dagbag_cpu_s": dagbag_cpu_s,  # this process's CPU (neither system runs a subprocess in it)
        "process_age_s": started + (t_end - T0),  # /proc's view of the whole process (10 ms ticks)
        "rss_before_kib": rss_before,
        "rss_peak_kib": rss_after,
        "dags": dags,
        "tasks": sum(d["tasks"] for d in dags.values()),
        "import_errors": errors,
    }
    _emit(result)  # the caller's wall clock stops here
    if serialize:
        from airflow.serialization.serialized_objects import DagSerialization

        t = time.perf_counter()
        for bag in bags:
            for dag in bag.dags.values():
                DagSerialization.to_dict(dag)
        _emit({"serialize_s": time.perf_counter() - t, "rss_peak_serialized_kib": _hwm_kib()})
    os._exit(0)


def _emit(obj: dict) -> None:
    sys.stdout.write("\n" + MARK + json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
