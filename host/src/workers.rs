//! Threads of their own for the blocking stages, so that a stage that blocks cannot take
//! the threads another one needs: each rule group evaluates on a thread of its own (as
//! Prometheus runs a goroutine per group), and each recovery attempt runs on a thread of
//! its own, as many at once as its receiver's `concurrency`. Neither uses Tokio's shared
//! blocking pool, so a receiver that never answers cannot delay an evaluation.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The thread did not finish the job: the job panicked, or the thread could not start.
#[derive(Debug, thiserror::Error)]
#[error("the {thread} thread did not finish its job: {why}")]
pub struct Stopped {
    thread: String,
    why: &'static str,
}

/// A named thread running jobs one after the other. It ends when the worker is dropped.
pub struct Worker {
    name: String,
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread.
    pub fn new(name: String) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                for job in queue {
                    // A panicking job drops its answer; the thread goes on with the next.
                    std::panic::catch_unwind(AssertUnwindSafe(job)).ok();
                }
            })?;
        Ok(Worker { name, jobs })
    }

    /// Runs `f` on the worker's thread, after the jobs before it, and waits for its result
    /// without holding the caller's thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        let (answer, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            answer.send(f()).ok();
        });
        let stopped = |why| Stopped {
            thread: self.name.clone(),
            why,
        };
        self.jobs.send(job).map_err(|_| stopped("it has ended"))?;
        result.await.map_err(|_| stopped("it panicked"))
    }
}

/// Runs `f` on a new thread named `name` and waits for its result without holding the
/// caller's thread.
pub async fn once<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    let worker = Worker::new(name.clone()).map_err(|_| Stopped {
        thread: name,
        why: "it could not start",
    })?;
    worker.run(f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_runs_jobs_on_its_thread_and_survives_a_panic() {
        let worker = Worker::new("test-worker".into()).unwrap();
        let name = worker
            .run(|| std::thread::current().name().map(String::from))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("test-worker"));
        let panicked = worker.run(|| panic!("boom")).await;
        assert!(panicked.unwrap_err().to_string().contains("panicked"));
        assert_eq!(worker.run(|| 2 + 2).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn once_runs_on_a_new_thread() {
        let caller = std::thread::current().id();
        let other = once("test-once".into(), move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(caller, other);
    }
}
