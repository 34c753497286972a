//! The one engine of the volume swaps (`lvm-pvc-snapshot restore`, `backupctl restore pvc
//! --into-volume`): run a plan's steps in order; at a failure, undo the steps done, newest
//! first, and say what was undone and how that went. What each step does, how it is undone and
//! what a failure of it means are the caller's; the order and the bookkeeping are here.

/// What a failed step means for the rest of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Undo the steps done, newest first, and stop.
    Undo,
    /// Stop here and undo nothing (what is done must stay: the caller says what is left).
    Stop,
    /// Note it and go on with the next step (a workload that did not scale back up: the
    /// others still do).
    Continue,
}

/// How a run of steps went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepsRun {
    /// The steps done, described, in order.
    pub done: Vec<String>,
    /// The first step that failed and why.
    pub failed: Option<(String, String)>,
    /// The steps that failed and were passed over ([`OnFailure::Continue`]), described.
    pub passed_over: Vec<String>,
    /// The undo steps run after a failure, with their outcome.
    pub undone: Vec<(String, Result<(), String>)>,
    /// Where the run ended early: the index of the step that failed and what was done about it.
    pub ended_at: Option<(usize, OnFailure)>,
}

impl StepsRun {
    /// True when every undo step that ran succeeded.
    pub fn undo_ok(&self) -> bool {
        self.undone.iter().all(|(_, r)| r.is_ok())
    }
}

/// The steps of a plan and what each means: its words, how it runs, how it is undone (`None`:
/// nothing to undo) and what its failure means.
pub trait UndoableSteps<S> {
    /// The step in words.
    fn describe(&self, step: &S) -> String;
    /// Runs the step.
    ///
    /// # Errors
    /// Whatever the step failed at.
    fn run(&mut self, step: &S) -> Result<(), String>;
    /// Undoes a step that was done: what is undone, and how it went.
    fn undo(&mut self, step: &S) -> Option<(String, Result<(), String>)>;
    /// What a failure of `step` means.
    fn on_failure(&self, step: &S) -> OnFailure;
}

/// Runs `steps` in order; at the first failure that asks for it, undoes the steps done, newest
/// first.
pub fn run_with_undo<S>(plan: &mut impl UndoableSteps<S>, steps: &[S]) -> StepsRun {
    let mut out = StepsRun::default();
    for (i, step) in steps.iter().enumerate() {
        let Err(e) = plan.run(step) else {
            out.done.push(plan.describe(step));
            continue;
        };
        let what = plan.describe(step);
        match plan.on_failure(step) {
            OnFailure::Continue => {
                out.failed.get_or_insert((what.clone(), e));
                out.passed_over.push(what);
            }
            OnFailure::Stop => {
                out.failed = Some((what, e));
                out.ended_at = Some((i, OnFailure::Stop));
                return out;
            }
            OnFailure::Undo => {
                out.failed = Some((what, e));
                for done in steps[..i].iter().rev() {
                    if let Some(u) = plan.undo(done) {
                        out.undone.push(u);
                    }
                }
                out.ended_at = Some((i, OnFailure::Undo));
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps are numbers; `fail` names the ones that fail and what that means.
    struct Plan {
        fail: Vec<(u32, OnFailure)>,
        log: Vec<String>,
    }

    impl UndoableSteps<u32> for Plan {
        fn describe(&self, s: &u32) -> String {
            format!("step {s}")
        }
        fn run(&mut self, s: &u32) -> Result<(), String> {
            self.log.push(format!("run {s}"));
            match self.fail.iter().find(|(f, _)| f == s) {
                Some(_) => Err(format!("{s} failed")),
                None => Ok(()),
            }
        }
        fn undo(&mut self, s: &u32) -> Option<(String, Result<(), String>)> {
            self.log.push(format!("undo {s}"));
            (s % 2 == 1).then(|| (format!("undo {s}"), Ok(())))
        }
        fn on_failure(&self, s: &u32) -> OnFailure {
            self.fail
                .iter()
                .find(|(f, _)| f == s)
                .map_or(OnFailure::Undo, |f| f.1)
        }
    }

    #[test]
    fn a_failure_undoes_the_steps_done_newest_first_and_runs_nothing_after() {
        let mut p = Plan {
            fail: vec![(4, OnFailure::Undo)],
            log: Vec::new(),
        };
        let r = run_with_undo(&mut p, &[1, 2, 3, 4, 5]);
        assert_eq!(
            p.log,
            ["run 1", "run 2", "run 3", "run 4", "undo 3", "undo 2", "undo 1"]
        );
        assert_eq!(r.done, ["step 1", "step 2", "step 3"]);
        assert_eq!(r.failed, Some(("step 4".into(), "4 failed".into())));
        assert_eq!(
            r.undone,
            [("undo 3".into(), Ok(())), ("undo 1".into(), Ok(()))]
        );
        assert_eq!(r.ended_at, Some((3, OnFailure::Undo)));
    }

    #[test]
    fn a_stop_undoes_nothing_and_a_continue_goes_on() {
        let mut p = Plan {
            fail: vec![
                (2, OnFailure::Continue),
                (3, OnFailure::Continue),
                (4, OnFailure::Stop),
            ],
            log: Vec::new(),
        };
        let r = run_with_undo(&mut p, &[1, 2, 3, 4, 5]);
        assert_eq!(p.log, ["run 1", "run 2", "run 3", "run 4"]);
        assert_eq!(r.passed_over, ["step 2", "step 3"]);
        assert_eq!(r.failed, Some(("step 4".into(), "4 failed".into())));
        assert!(r.undone.is_empty());
        assert_eq!(r.ended_at, Some((3, OnFailure::Stop)));
    }
}
