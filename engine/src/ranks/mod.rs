//! The processes of a data-parallel job ("ranks") and how they exchange values.
//!
//! `engine run` joins the job it was started in: under `mpirun -np N` (an engine built with
//! the `mpi` feature) the N processes train one model together; started alone it is rank 0
//! of 1 and nothing is exchanged. The executor sees only the [`Ranks`] trait.

#[cfg(feature = "mpi")]
mod mpi;

use std::time::Duration;

/// The ranks of a job, seen from one of them.
pub trait Ranks {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// How many ranks the job has.
    fn size(&self) -> usize;
    /// Every rank's `mine` (all of the same length) goes to rank 0, which folds their
    /// concatenation in rank order into one answer of `answer_len` words with `fold` (run
    /// on rank 0 only); every rank gets that answer. `what` names the exchange in timeout
    /// messages. A rank that does not take part within the job's timeout ends the whole
    /// job with a message naming it.
    fn reduce_in_order(
        &self,
        what: &str,
        mine: &[u32],
        answer_len: usize,
        fold: &mut dyn FnMut(&[u32]) -> Vec<u32>,
    ) -> Result<Vec<u32>, RanksError>;
    /// Every rank's `mine` (all of the same length), concatenated in rank order, on every
    /// rank.
    fn exchange(&self, what: &str, mine: &[u32]) -> Result<Vec<u32>, RanksError> {
        self.reduce_in_order(what, mine, mine.len() * self.size(), &mut |all| {
            all.to_vec()
        })
    }
    /// Ends the whole job with exit code `code` after this rank failed on its own (the
    /// others would otherwise wait for it at their next exchange). A job of one returns.
    fn abort(&self, code: i32);
}

/// Why the job could not be joined or an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RanksError {
    /// Started by a launcher that asks for several ranks, without MPI support built in.
    #[error(
        "this process was started as rank {rank} of {size} (by mpirun), but this engine was built without MPI; build it with `cargo build --release --features mpi` (needs OpenMPI: `apt-get install libopenmpi-dev openmpi-bin libclang-dev`)"
    )]
    NoMpi {
        /// The rank the launcher gave.
        rank: usize,
        /// The ranks it asked for.
        size: usize,
    },
    /// The ranks sent buffers of different lengths (they run different pipelines).
    #[error(
        "rank {rank} sent {found} values to the {what} exchange, rank 0 expected {expected}: do all ranks run the same pipeline?"
    )]
    Mismatch {
        /// The exchange.
        what: String,
        /// The rank that differs.
        rank: usize,
        /// Its length.
        found: usize,
        /// Rank 0's length.
        expected: usize,
    },
}

/// A job of one: `engine run` without a launcher.
pub struct OneRank;

impl Ranks for OneRank {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn reduce_in_order(
        &self,
        _what: &str,
        mine: &[u32],
        _answer_len: usize,
        fold: &mut dyn FnMut(&[u32]) -> Vec<u32>,
    ) -> Result<Vec<u32>, RanksError> {
        Ok(fold(mine))
    }
    fn abort(&self, _code: i32) {}
}

/// The rank and size an MPI launcher gave this process (OpenMPI's, MPICH's or PMIx's
/// environment), if it was started by one.
pub fn launched_as() -> Option<(usize, usize)> {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok()?.parse::<usize>().ok())
    };
    let size = var(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"])?;
    let rank = var(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]).unwrap_or(0);
    Some((rank, size))
}

/// This process's index among the job's ranks on its host (OpenMPI's, MPICH's or PMIx's
/// local rank), 0 without a launcher: which of the host's adapters it opens.
pub fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "PMIX_LOCAL_RANK",
    ]
    .iter()
    .find_map(|n| std::env::var(n).ok()?.parse::<usize>().ok())
    .unwrap_or(0)
}

/// How many of the job's ranks run on this host (OpenMPI's, MPICH's or PMIx's local
/// size), if a launcher says.
fn local_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "PMIX_LOCAL_SIZE",
    ]
    .iter()
    .find_map(|n| std::env::var(n).ok()?.parse::<usize>().ok())
}

/// Threads for each of `local` ranks sharing `cores` cores (at least one).
fn threads_per_rank(cores: usize, local: usize) -> usize {
    (cores / local.max(1)).max(1)
}

/// Ranks sharing a host split its cores: when a launcher started several ranks on this
/// host, rayon's pool (the cpu backend's kernels, the data stages) gets `cores / local
/// ranks` threads in each instead of every core in each, which would oversubscribe the
/// host. `RAYON_NUM_THREADS` still decides where it is set. Returns the threads chosen,
/// `None` when nothing was changed; call before anything uses rayon.
pub fn share_host_cores() -> Result<Option<usize>, String> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(None);
    }
    let Some(local) = local_size().filter(|&l| l > 1) else {
        return Ok(None);
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = threads_per_rank(cores, local);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| {
            format!("could not give each of the host's {local} ranks {threads} threads: {e}")
        })?;
    Ok(Some(threads))
}

/// Joins the job this process was started in: MPI when a launcher started several ranks
/// (and the engine has the `mpi` feature), else a job of one. `timeout` bounds how long a
/// rank waits for the others at an exchange.
pub fn join(timeout: Duration) -> Result<Box<dyn Ranks>, RanksError> {
    match launched_as() {
        Some((rank, size)) if size > 1 => join_mpi(rank, size, timeout),
        _ => Ok(Box::new(OneRank)),
    }
}

#[cfg(feature = "mpi")]
fn join_mpi(_rank: usize, _size: usize, timeout: Duration) -> Result<Box<dyn Ranks>, RanksError> {
    Ok(Box::new(mpi::MpiRanks::join(timeout)))
}

#[cfg(not(feature = "mpi"))]
fn join_mpi(rank: usize, size: usize, _timeout: Duration) -> Result<Box<dyn Ranks>, RanksError> {
    Err(RanksError::NoMpi { rank, size })
}

/// Whether this engine was built with MPI support.
pub const HAS_MPI: bool = cfg!(feature = "mpi");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rank_exchanges_with_itself() {
        let one = OneRank;
        assert_eq!((one.rank(), one.size()), (0, 1));
        assert_eq!(one.exchange("test", &[1, 2, 3]).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn ranks_on_one_host_split_its_cores() {
        assert_eq!(threads_per_rank(16, 4), 4);
        assert_eq!(threads_per_rank(16, 3), 5);
        assert_eq!(threads_per_rank(2, 2), 1);
        assert_eq!(threads_per_rank(2, 8), 1, "never fewer than one");
        assert_eq!(threads_per_rank(8, 0), 8);
    }
}
