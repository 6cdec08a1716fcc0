"""Errors of the Spark jobs as one line an operator can read (Spark-free: py4j attributes only)."""

from __future__ import annotations


def summarize_spark_error(exc: BaseException, limit: int = 400) -> str:
    """One line for an operator from a JVM failure: the outermost Java error and its root cause.

    Py4J's text is the JVM's whole stack trace (hundreds of lines); what matters is e.g.
    `java.net.ConnectException: getFileStatus on s3a://bucket/x: ... Connection refused`.
    """
    java = getattr(exc, "java_exception", None)
    if java is None:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
    chain: list[str] = []
    while java is not None and len(chain) < 20:
        message = str(java.getMessage() or "").strip().splitlines()
        chain.append(f"{java.getClass().getName()}: {message[0] if message else ''}".strip())
        java = java.getCause()
    text = chain[0] if len(chain) == 1 or chain[-1] in chain[0] else f"{chain[0]} (cause: {chain[-1]})"
    return text[:limit]
