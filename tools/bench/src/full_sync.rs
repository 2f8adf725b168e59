//! Full sync of 100,000 users: pending until functions/full-sync has landed with a library this
//! benchmark can drive; until then the section says so.

use crate::doc;

pub fn run() -> anyhow::Result<()> {
    let root = doc::workspace_root();
    let landed = root.join("functions/full-sync/src/lib.rs").exists();
    let body = if landed {
        "### Full sync of 100,000 users\n\n\
         **Pending.** functions/full-sync has landed, but this benchmark does not drive it yet: \
         to do — seed 100,000 rows in moto (BatchWriteItem), run the function's handler in \
         process until its cursor is exhausted, and report the run time, the number of chunks \
         (self re-invocations), messages enqueued, and the peak RSS at 10,000 and at 100,000 \
         rows (it must not grow with the table).\n"
    } else {
        "### Full sync of 100,000 users\n\n\
         **Pending.** functions/full-sync did not exist when these benchmarks were written \
         (another change builds it). To measure once it lands: seed 100,000 rows in moto \
         (BatchWriteItem), run the function's handler in process until its cursor is \
         exhausted, and report the run time, the number of chunks (self re-invocations), \
         messages enqueued, and the peak RSS at 10,000 and at 100,000 rows (it must not grow \
         with the table). The cost of a 1M-user run's exports and scan is in the cost model.\n"
    };
    doc::write_section("full-sync", body)
}
