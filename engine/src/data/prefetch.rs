//! Preparing the next batches on a background thread while the device computes.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::batch::{Batch, BatchIter};
use super::error::DataError;

/// Runs a [`BatchIter`] on its own thread, `depth` batches ahead of the consumer.
///
/// Iterate it like the `BatchIter` it wraps (same batches, same order). Hand each
/// finished batch back with [`Prefetcher::recycle`] so its buffers are reused and the
/// steady state allocates nothing. Dropping it stops the thread.
///
/// ```ignore
/// let batches = BatchIter::new(train.clone(), config, epoch)?.starting_at(k).until_epoch(epochs);
/// let mut prefetcher = Prefetcher::spawn(batches, 2)?;
/// while let Some(batch) = prefetcher.next() {
///     device.upload(&batch.features, &batch.labels);
///     prefetcher.recycle(batch);
///     device.step();
/// }
/// ```
#[derive(Debug)]
pub struct Prefetcher {
    /// `None` only while dropping, to hang up before joining.
    ready: Option<Receiver<Batch>>,
    recycled: Sender<Batch>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the background thread; `depth` is how many finished batches may wait
    /// (1 or 2 suffice; 0 is taken as 1). Errors only if the OS refuses a thread.
    pub fn spawn(mut batches: BatchIter, depth: usize) -> Result<Prefetcher, DataError> {
        let (ready_tx, ready_rx): (SyncSender<Batch>, Receiver<Batch>) =
            mpsc::sync_channel(depth.max(1));
        let (recycled_tx, recycled_rx) = mpsc::channel::<Batch>();
        let worker = std::thread::Builder::new()
            .name("data-prefetch".into())
            .spawn(move || {
                loop {
                    let mut batch = recycled_rx.try_recv().unwrap_or_default();
                    if !batches.next_into(&mut batch) || ready_tx.send(batch).is_err() {
                        return; // done, or the consumer hung up
                    }
                }
            })
            .map_err(|source| DataError::Thread { source })?;
        Ok(Prefetcher {
            ready: Some(ready_rx),
            recycled: recycled_tx,
            worker: Some(worker),
        })
    }

    /// Gives a used batch's buffers back for the thread to fill again.
    pub fn recycle(&self, batch: Batch) {
        // Fails only when the thread has finished, and then the buffers are not needed.
        let _ = self.recycled.send(batch);
    }
}

impl Iterator for Prefetcher {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.ready.as_ref()?.recv().ok();
        if batch.is_none() {
            // The thread is done; if it panicked (a bug, never bad input), surface it here.
            if let Some(Err(panic)) = self.worker.take().map(JoinHandle::join) {
                std::panic::resume_unwind(panic);
            }
        }
        batch
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Hang up first so a thread blocked on a full channel wakes and exits.
        drop(self.ready.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::BatchConfig;
    use crate::data::dataset::Dataset;
    use crate::data::split::Split;
    use std::sync::Arc;

    fn iter(epochs: u64) -> BatchIter {
        let data = Dataset::classification(
            (0..300).map(|i| i as f32).collect(),
            vec![3],
            vec![0; 100],
            1,
        )
        .unwrap();
        let config = BatchConfig {
            batch_size: 7,
            shuffle: true,
            drop_last: false,
            seed: 3,
        };
        BatchIter::new(Split::whole(Arc::new(data)), config, 0)
            .unwrap()
            .until_epoch(epochs)
    }

    #[test]
    fn yields_the_same_batches_as_the_iterator() {
        let direct: Vec<Batch> = iter(3).collect();
        let mut prefetcher = Prefetcher::spawn(iter(3), 2).unwrap();
        let mut fetched = Vec::new();
        while let Some(batch) = prefetcher.next() {
            fetched.push(batch.clone());
            prefetcher.recycle(batch);
        }
        assert_eq!(fetched, direct);
        assert!(prefetcher.next().is_none());
    }

    #[test]
    fn dropping_early_stops_the_thread() {
        let mut prefetcher = Prefetcher::spawn(iter(1000), 1).unwrap();
        assert!(prefetcher.next().is_some());
        drop(prefetcher); // must not hang
    }
}
