//! `log`: progress lines (or a live bar on a terminal) at its triggers.

use super::{Action, CallbackRule, Callbacks, Hook, NoSettings};
use crate::run::{RunError, StepMetricsSummary};
use crate::spec::{EvalMetric, Trigger};

/// Progress on the terminal.
pub struct Log;

impl CallbackRule for Log {
    type Spec = NoSettings;
    const NAME: &'static str = "log";
    const DESCRIPTION: &'static str =
        "Progress on the terminal: a live bar on a TTY, plain lines otherwise.";
    const SHOWS_PROGRESS: bool = true;

    fn default_triggers(_: &NoSettings) -> Vec<Trigger> {
        vec![Trigger::EveryNSteps(50), Trigger::EpochEnd]
    }

    fn on_hook(_: &NoSettings, cb: &mut Callbacks, hook: &Hook) -> Result<Action, RunError> {
        log(cb, hook);
        Ok(Action::Continue)
    }
}

fn log(cb: &Callbacks, hook: &Hook) {
    let at = hook.at;
    let total = cb.plan.schedule.total_steps;
    let several = at.chains.len() > 1;
    if let Trigger::EveryNSteps(_) = at.trigger {
        let rate = at.samples as f64 / at.elapsed.max(1e-9);
        if let Some(bar) = &cb.progress {
            let losses: Vec<String> = at
                .chains
                .iter()
                .map(|c| {
                    let w = StepMetricsSummary::from(c.window);
                    if several {
                        format!("{} loss {:.4}", c.name, w.loss)
                    } else {
                        format!("loss {:.4}", w.loss)
                    }
                })
                .collect();
            bar.set_position(at.step);
            bar.set_message(format!(
                "epoch {} {} {rate:.0} samples/s",
                at.epoch + 1,
                losses.join(" ")
            ));
            return;
        }
        for c in at.chains {
            let w = StepMetricsSummary::from(c.window);
            let who = if several {
                format!("  {}", c.name)
            } else {
                String::new()
            };
            let acc = if regression(cb, c.name) {
                String::new()
            } else {
                format!("  acc {:>5.1}%", w.accuracy * 100.0)
            };
            cb.say(format!(
                "epoch {:>3}  step {:>6}/{total}{who}  loss {:.4}{acc}  lr {:.2e}  {rate:.0} samples/s",
                at.epoch + 1, at.step, w.loss, c.lr
            ));
        }
        return;
    }
    let round = matches!(at.trigger, Trigger::RoundEnd | Trigger::EveryNRounds(_));
    if !(round || matches!(at.trigger, Trigger::EpochEnd | Trigger::FitEnd)) {
        return;
    }
    let mut parts = vec![match at.trigger {
        Trigger::FitEnd => format!("done: {} steps in {:.1}s", at.step, at.elapsed),
        _ if round => format!(
            "round {}/{}",
            at.epoch + 1,
            cb.plan.federated.as_ref().map_or(0, |f| f.rounds)
        ),
        _ => format!(
            "epoch {}/{}",
            at.epoch + 1,
            cb.plan
                .schedule
                .epochs
                .map_or("-".into(), |e| e.to_string())
        ),
    }];
    if at.trigger == Trigger::EpochEnd || round {
        for c in at.chains {
            if let Some(t) = cb.memory.train.get(c.name) {
                let who = if several {
                    format!("{} ", c.name)
                } else {
                    String::new()
                };
                let acc = if regression(cb, c.name) {
                    String::new()
                } else {
                    format!(" accuracy {:.1}%", t.accuracy * 100.0)
                };
                parts.push(format!("{who}train loss {:.4}{acc}", t.loss));
            }
        }
    }
    for e in &cb.plan.evals {
        if let Some(m) = cb.memory.evals.get(&e.name) {
            let mut part = format!("{} loss {:.4}", e.name, m.loss);
            for metric in e.metrics.iter().filter(|x| **x != EvalMetric::LOSS) {
                if let Some(shown) = metric.show(m) {
                    part.push(' ');
                    part.push_str(&shown);
                }
            }
            parts.push(part);
        }
    }
    cb.say(parts.join("  "));
}

/// Whether chain `name` trains on regression targets (its records have no accuracy).
fn regression(cb: &Callbacks, name: &str) -> bool {
    cb.plan
        .chains
        .iter()
        .any(|c| c.name == name && c.regression)
}
