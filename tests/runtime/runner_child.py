"""A runner in its own process, for the kill-and-restart test:
python -m tests.runtime.runner_child STREAM_ARN CHECKPOINT_FILE BATCH_SIZE"""

from __future__ import annotations

import sys
import threading

from processors.runtime.checkpoints import JsonCheckpointStore
from processors.runtime.runner import EventSourceMapping, Runner


def main() -> None:
    arn, checkpoint_file, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mapping = EventSourceMapping(
        name="restartable",
        function="tests.runtime.handlers.append_records",
        event_source_arn=arn,
        starting_position="TRIM_HORIZON",
        batch_size=batch_size,
        function_response_types=("ReportBatchItemFailures",),
    )
    runner = Runner([mapping], JsonCheckpointStore(checkpoint_file), poll_interval_seconds=0.05, retry_delay_seconds=0)
    print("started", flush=True)
    runner.run(threading.Event())


if __name__ == "__main__":
    main()
