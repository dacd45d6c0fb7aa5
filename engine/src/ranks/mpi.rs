//! Ranks over MPI (rsmpi on the system's OpenMPI). Exchanges are point-to-point through
//! rank 0 rather than `MPI_Allgather`, so a rank that has died or hangs is noticed by name:
//! every wait polls its requests against the job's timeout and, when it runs out, prints
//! which ranks did not answer and aborts the whole job (`MPI_Abort`, which mpirun turns
//! into the end of every rank).

use std::time::{Duration, Instant};

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::{Ranks, RanksError};

/// Exit code of a job ended because a rank did not answer.
const ABORT_CODE: i32 = 3;

pub(super) struct MpiRanks {
    /// Finalizes MPI when dropped: kept for the life of the process's job.
    _universe: Universe,
    world: SimpleCommunicator,
    timeout: Duration,
}

impl MpiRanks {
    pub(super) fn join(timeout: Duration) -> MpiRanks {
        // `initialize` is None only when MPI was initialized before, which nothing in
        // this process does; a second join is a programming error.
        let universe = mpi::initialize().expect("MPI is initialized once per process");
        let world = universe.world();
        MpiRanks {
            _universe: universe,
            world,
            timeout,
        }
    }

    /// Waits for every request (tagged with the rank it talks to) until the timeout; on
    /// timeout names the ranks still pending and aborts the job.
    fn wait_all<'a, S: Scope<'a>>(
        &self,
        what: &str,
        mut pending: Vec<(usize, Request<'a, [u32], S>)>,
    ) {
        let started = Instant::now();
        // The others wait only for rank 0, which waits for them all and so knows which
        // rank is missing: it must run out first to be the one that names it.
        let timeout = if self.rank() == 0 {
            self.timeout
        } else {
            self.timeout * 2
        };
        let mut pause = Duration::from_micros(20);
        while !pending.is_empty() {
            let mut still = Vec::with_capacity(pending.len());
            for (rank, request) in pending {
                if let Err(request) = request.test() {
                    still.push((rank, request));
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if started.elapsed() > timeout {
                let ranks: Vec<String> = pending.iter().map(|(r, _)| r.to_string()).collect();
                eprintln!(
                    "error: rank {}: no answer from rank {} in the {what} exchange within {} s; a rank died or hangs, ending the job (raise the limit with --rank-timeout)",
                    self.rank(),
                    ranks.join(", "),
                    timeout.as_secs()
                );
                self.world.abort(ABORT_CODE);
            }
            // Sleep rather than spin: the ranks share the machine's cores with the
            // adapters' threads.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }
}

impl MpiRanks {
    /// Rank 0: fills `chunk`-word pieces of `into` from ranks 1, 2, … in order.
    fn receive_from_others(&self, what: &str, into: &mut [u32], chunk: usize) {
        if chunk == 0 {
            return;
        }
        mpi::request::scope(|scope| {
            let requests = into
                .chunks_mut(chunk)
                .enumerate()
                .map(|(i, piece)| {
                    let r = i + 1;
                    let p = self.world.process_at_rank(r as i32);
                    (r, p.immediate_receive_into(scope, piece))
                })
                .collect();
            self.wait_all(what, requests);
        });
    }
}

impl Ranks for MpiRanks {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn reduce_in_order(
        &self,
        what: &str,
        mine: &[u32],
        answer_len: usize,
        fold: &mut dyn FnMut(&[u32]) -> Vec<u32>,
    ) -> Result<Vec<u32>, RanksError> {
        let n = mine.len();
        let size = self.size();
        // The length first, so ranks that disagree fail with a message, not a truncation.
        let mut lengths = vec![0u32; size];
        let len = [n as u32];
        let mut answer = vec![0u32; answer_len];
        if self.rank() == 0 {
            self.receive_from_others(what, &mut lengths[1..], 1);
            if let Some((r, &found)) = lengths
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, l)| **l as usize != n)
            {
                self.world.abort_with(RanksError::Mismatch {
                    what: what.to_string(),
                    rank: r,
                    found: found as usize,
                    expected: n,
                });
            }
            let mut all = vec![0u32; n * size];
            all[..n].copy_from_slice(mine);
            self.receive_from_others(what, &mut all[n..], n);
            answer = fold(&all);
            if answer.len() != answer_len {
                self.world.abort_with(RanksError::Mismatch {
                    what: format!("{what} answer"),
                    rank: 0,
                    found: answer.len(),
                    expected: answer_len,
                });
            }
            if answer_len > 0 {
                mpi::request::scope(|scope| {
                    let requests = (1..size)
                        .map(|r| {
                            let p = self.world.process_at_rank(r as i32);
                            (r, p.immediate_send(scope, &answer[..]))
                        })
                        .collect();
                    self.wait_all(what, requests);
                });
            }
        } else {
            let root = self.world.process_at_rank(0);
            mpi::request::scope(|scope| {
                self.wait_all(what, vec![(0, root.immediate_send(scope, &len[..]))]);
                if n > 0 {
                    self.wait_all(what, vec![(0, root.immediate_send(scope, mine))]);
                }
                if answer_len > 0 {
                    self.wait_all(
                        what,
                        vec![(0, root.immediate_receive_into(scope, &mut answer[..]))],
                    );
                }
            });
        }
        Ok(answer)
    }

    fn abort(&self, code: i32) {
        self.world.abort(code)
    }
}

trait AbortWith {
    fn abort_with(&self, error: RanksError) -> !;
}

impl AbortWith for SimpleCommunicator {
    fn abort_with(&self, error: RanksError) -> ! {
        eprintln!("error: {error}");
        self.abort(ABORT_CODE)
    }
}
