//! Aggregate scores over graded samples: accuracy with a seeded bootstrap 95% interval, pass@k
//! (the unbiased estimator of Chen et al. 2021) and maj@k (majority vote over the first k samples).
//! The unit of resampling and averaging is the task, so a task with 8 samples weighs as much as a
//! task with 1.

use sfn_run::SplitMix64;
use std::collections::HashMap;

/// One task's graded samples, in sample order.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub correct: Vec<bool>,
    /// The vote key of each sample's extracted answer (`None`: no answer).
    pub answer_keys: Vec<Option<String>>,
    /// Does each vote key equal the gold answer? (parallel to `answer_keys`)
    pub key_correct: HashMap<String, bool>,
}

/// Mean over tasks of the share of correct samples.
pub fn accuracy(tasks: &[TaskOutcome]) -> Option<f64> {
    let per_task: Vec<f64> = tasks.iter().filter(|t| !t.correct.is_empty()).map(task_mean).collect();
    (!per_task.is_empty()).then(|| per_task.iter().sum::<f64>() / per_task.len() as f64)
}

fn task_mean(t: &TaskOutcome) -> f64 {
    t.correct.iter().filter(|&&c| c).count() as f64 / t.correct.len() as f64
}

/// Percentile bootstrap over tasks: `resamples` times draw as many tasks with replacement, take the
/// accuracy, and return the 2.5th and 97.5th percentiles (linear interpolation between order
/// statistics). Deterministic for a seed.
pub fn bootstrap_ci95(tasks: &[TaskOutcome], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    let per_task: Vec<f64> = tasks.iter().filter(|t| !t.correct.is_empty()).map(task_mean).collect();
    bootstrap_mean_ci95(&per_task, resamples, seed)
}

/// The same percentile bootstrap for the mean of any per-task values (a paired comparison passes
/// per-task differences).
pub fn bootstrap_mean_ci95(values: &[f64], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    if values.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let n = values.len();
    let mut stats: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| values[rng.below(n as u64) as usize]).sum::<f64>() / n as f64).collect();
    stats.sort_by(f64::total_cmp);
    Some([percentile(&stats, 0.025), percentile(&stats, 0.975)])
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Unbiased pass@k for one task with n samples of which c are correct: 1 - C(n-c, k) / C(n, k),
/// computed as a running product so that no binomial coefficient is formed.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// Mean pass@k over the tasks that have at least k samples.
pub fn mean_pass_at_k(tasks: &[TaskOutcome], k: usize) -> Option<f64> {
    let v: Vec<f64> = tasks
        .iter()
        .filter(|t| t.correct.len() >= k)
        .map(|t| pass_at_k(t.correct.len(), t.correct.iter().filter(|&&c| c).count(), k))
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// maj@k: the most frequent answer among the first k samples (ties to the answer seen first;
/// samples without an answer do not vote) is correct. Mean over tasks with at least k samples.
pub fn mean_maj_at_k(tasks: &[TaskOutcome], k: usize) -> Option<f64> {
    let v: Vec<f64> = tasks
        .iter()
        .filter(|t| t.answer_keys.len() >= k)
        .map(|t| {
            let mut counts: Vec<(&String, usize)> = Vec::new();
            for key in t.answer_keys[..k].iter().flatten() {
                match counts.iter_mut().find(|(k2, _)| *k2 == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 1)),
                }
            }
            // max_by_key returns the last maximum; iterate reversed so the first-seen wins ties.
            let winner = counts.iter().rev().max_by_key(|(_, n)| *n).map(|(k, _)| *k);
            let ok = winner.is_some_and(|w| t.key_correct.get(w).copied().unwrap_or(false));
            if ok {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The k values reported for n samples per task: powers of two below n, and n itself.
pub fn report_ks(n: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |k| Some(k * 2)).take_while(|&k| k < n).collect();
    if n > 1 {
        ks.push(n);
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(correct: &[bool]) -> TaskOutcome {
        TaskOutcome { correct: correct.to_vec(), answer_keys: vec![], key_correct: HashMap::new() }
    }

    #[test]
    fn pass_at_k_matches_the_closed_form() {
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 0, 1), 0.0);
        assert_eq!(pass_at_k(4, 4, 3), 1.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let tasks: Vec<_> = (0..40).map(|i| outcome(&[i % 3 == 0])).collect();
        let acc = accuracy(&tasks).unwrap();
        let ci = bootstrap_ci95(&tasks, 1000, 7).unwrap();
        assert!(ci[0] < acc && acc < ci[1], "{ci:?} {acc}");
        assert_eq!(ci, bootstrap_ci95(&tasks, 1000, 7).unwrap());
    }

    #[test]
    fn maj_at_k_takes_the_first_seen_answer_on_ties() {
        let t = TaskOutcome {
            correct: vec![false, true, false, true],
            answer_keys: vec![Some("7".into()), Some("5".into()), Some("7".into()), Some("5".into())],
            key_correct: HashMap::from([("7".to_string(), false), ("5".to_string(), true)]),
        };
        assert_eq!(mean_maj_at_k(std::slice::from_ref(&t), 4), Some(0.0));
        assert_eq!(mean_maj_at_k(std::slice::from_ref(&t), 2), Some(0.0));
        assert_eq!(report_ks(8), vec![1, 2, 4, 8]);
        assert_eq!(report_ks(6), vec![1, 2, 4, 6]);
        assert!(report_ks(1).is_empty());
    }
}
