//! The fault plan, scripted answers and the statistics the admin API reports.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Faults injected into non-admin requests; the same seed gives the same sequence of outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    pub seed: u64,
    /// Added before every request that is handled normally.
    pub latency_ms: u64,
    /// Share of requests answered 503 without touching the store (half as an HTML page).
    pub error_5xx_rate: f64,
    /// Share of requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    pub retry_after_secs: u64,
    /// Share of requests that hang `hang_ms` before touching the store.
    pub timeout_rate: f64,
    pub hang_ms: u64,
    /// Share of requests that are handled (the write is committed) and then hang `hang_ms`.
    pub lost_response_rate: f64,
    /// Windows counted in non-admin requests since the plan was set, answering 503 throughout.
    pub outages: Vec<Outage>,
    /// Answer 503 to everything until cleared.
    pub down: bool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            seed: 42,
            latency_ms: 0,
            error_5xx_rate: 0.0,
            rate_429: 0.0,
            retry_after_secs: 1,
            timeout_rate: 0.0,
            hang_ms: 30_000,
            lost_response_rate: 0.0,
            outages: Vec::new(),
            down: false,
        }
    }
}

/// Requests number `after_requests + 1 ..= after_requests + for_requests` are answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub after_requests: u64,
    pub for_requests: u64,
}

/// One exact answer for the next non-admin request (`POST /admin/script`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScriptedAnswer {
    /// Answer this without touching the store.
    Respond {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
        #[serde(default)]
        body: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// Hang this long without touching the store, then answer 504.
    Hang { hang_ms: u64 },
    /// Handle the request (commit the write), then answer this status with an HTML page.
    CommitThenStatus { commit_then_status: u16 },
}

/// What the admin API reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Transport (`json`, `odata`, `commerceml`, `other`) → status code answered → count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Fault kind (`down`, `outage`, `scripted`, `error_5xx`, `rate_429`, `timeout`,
    /// `lost_response`, `latency`) → count.
    pub faults: BTreeMap<String, u64>,
}

impl Stats {
    pub fn requests_total(&self) -> u64 {
        self.requests.values().flat_map(|by| by.values()).sum()
    }

    pub(crate) fn count_fault(&mut self, kind: FaultKind) {
        *self.faults.entry(kind.as_str().to_string()).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Down,
    Outage,
    Scripted,
    Error5xx,
    Rate429,
    Timeout,
    LostResponse,
    Latency,
}

impl FaultKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Outage => "outage",
            Self::Scripted => "scripted",
            Self::Error5xx => "error_5xx",
            Self::Rate429 => "rate_429",
            Self::Timeout => "timeout",
            Self::LostResponse => "lost_response",
            Self::Latency => "latency",
        }
    }
}

/// What to do with one non-admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Unavailable,
    Scripted(ScriptedAnswer),
    ServiceUnavailable {
        html: bool,
    },
    TooManyRequests {
        retry_after_secs: u64,
    },
    Hang {
        ms: u64,
    },
    Handle {
        latency_ms: u64,
        after: AfterHandling,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterHandling {
    Answer,
    /// Commit, then hang: "committed but response lost".
    HangThenAnswer {
        ms: u64,
    },
}

#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    rng: StdRng,
    requests: u64,
    script: VecDeque<ScriptedAnswer>,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            requests: 0,
            script: VecDeque::new(),
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Replaces the plan, reseeds and restarts the outage count; the script queue stays.
    pub fn set_plan(&mut self, plan: FaultPlan) {
        self.rng = StdRng::seed_from_u64(plan.seed);
        self.plan = plan;
        self.requests = 0;
    }

    pub fn push_script(&mut self, answers: impl IntoIterator<Item = ScriptedAnswer>) {
        self.script.extend(answers);
    }

    pub fn clear_script(&mut self) {
        self.script.clear();
    }

    /// Decides in the contract's order: down/outage, scripted answer, random draws, latency.
    pub fn decide(&mut self) -> (Decision, Vec<FaultKind>) {
        self.requests += 1;
        let n = self.requests;
        // Draw for every request, so the outcome of request k depends only on seed and k.
        let draw: f64 = self.rng.random();
        let html: bool = self.rng.random();
        if self.plan.down {
            return (Decision::Unavailable, vec![FaultKind::Down]);
        }
        let in_outage =
            self.plan.outages.iter().any(|o| {
                n > o.after_requests && n <= o.after_requests.saturating_add(o.for_requests)
            });
        if in_outage {
            return (Decision::Unavailable, vec![FaultKind::Outage]);
        }
        if let Some(answer) = self.script.pop_front() {
            return (Decision::Scripted(answer), vec![FaultKind::Scripted]);
        }
        let p = &self.plan;
        let mut threshold = p.error_5xx_rate;
        if draw < threshold {
            return (
                Decision::ServiceUnavailable { html },
                vec![FaultKind::Error5xx],
            );
        }
        threshold += p.rate_429;
        if draw < threshold {
            let retry_after_secs = p.retry_after_secs;
            return (
                Decision::TooManyRequests { retry_after_secs },
                vec![FaultKind::Rate429],
            );
        }
        threshold += p.timeout_rate;
        if draw < threshold {
            return (Decision::Hang { ms: p.hang_ms }, vec![FaultKind::Timeout]);
        }
        threshold += p.lost_response_rate;
        let mut kinds = Vec::new();
        let after = if draw < threshold {
            kinds.push(FaultKind::LostResponse);
            AfterHandling::HangThenAnswer { ms: p.hang_ms }
        } else {
            AfterHandling::Answer
        };
        if p.latency_ms > 0 {
            kinds.push(FaultKind::Latency);
        }
        (
            Decision::Handle {
                latency_ms: p.latency_ms,
                after,
            },
            kinds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(plan: FaultPlan, n: usize) -> Vec<Decision> {
        let mut state = FaultState::new(plan);
        (0..n).map(|_| state.decide().0).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_of_decisions() {
        // Given a plan with every random fault enabled
        let plan = FaultPlan {
            seed: 7,
            error_5xx_rate: 0.2,
            rate_429: 0.2,
            timeout_rate: 0.1,
            lost_response_rate: 0.1,
            ..FaultPlan::default()
        };
        // When two emulators draw from it
        let first = outcomes(plan.clone(), 200);
        let second = outcomes(plan, 200);
        // Then they decide identically, and the faults really occur
        assert_eq!(first, second);
        assert!(first
            .iter()
            .any(|d| matches!(d, Decision::TooManyRequests { .. })));
        assert!(first.iter().any(|d| matches!(
            d,
            Decision::Handle {
                after: AfterHandling::Answer,
                ..
            }
        )));
    }

    #[test]
    fn an_outage_window_covers_exactly_the_requests_it_names() {
        // Given an outage after 2 requests for 3 requests
        let plan = FaultPlan {
            outages: vec![Outage {
                after_requests: 2,
                for_requests: 3,
            }],
            ..FaultPlan::default()
        };
        // When 7 requests arrive
        let unavailable: Vec<bool> = outcomes(plan, 7)
            .iter()
            .map(|d| *d == Decision::Unavailable)
            .collect();
        // Then requests 3, 4 and 5 are refused
        assert_eq!(unavailable, [false, false, true, true, true, false, false]);
    }

    #[test]
    fn scripted_answers_come_before_random_faults_and_in_order() {
        // Given a plan that always answers 429, and two scripted answers
        let mut state = FaultState::new(FaultPlan {
            rate_429: 1.0,
            ..FaultPlan::default()
        });
        state.push_script([
            ScriptedAnswer::Hang { hang_ms: 5 },
            ScriptedAnswer::CommitThenStatus {
                commit_then_status: 502,
            },
        ]);
        // When three requests arrive
        let decisions: Vec<Decision> = (0..3).map(|_| state.decide().0).collect();
        // Then the script is served first, in order, then the plan applies
        assert_eq!(
            decisions[0],
            Decision::Scripted(ScriptedAnswer::Hang { hang_ms: 5 })
        );
        assert!(matches!(
            decisions[1],
            Decision::Scripted(ScriptedAnswer::CommitThenStatus { .. })
        ));
        assert!(matches!(decisions[2], Decision::TooManyRequests { .. }));
    }

    #[test]
    fn scripted_answers_parse_from_the_three_json_shapes() {
        // Given the three shapes of the contract
        let json = r#"[{"status":503,"content_type":"text/html","body":"<html/>","headers":{"Retry-After":"2"}},
                       {"hang_ms":5000},{"commit_then_status":502}]"#;
        // When parsed
        let answers: Vec<ScriptedAnswer> = serde_json::from_str(json).expect("parses");
        // Then each becomes its variant
        assert!(matches!(
            answers[0],
            ScriptedAnswer::Respond { status: 503, .. }
        ));
        assert_eq!(answers[1], ScriptedAnswer::Hang { hang_ms: 5000 });
        assert_eq!(
            answers[2],
            ScriptedAnswer::CommitThenStatus {
                commit_then_status: 502
            }
        );
    }
}
