//! How one try against an endpoint ended, as the caller observed it.
//!
//! One vocabulary for every state machine that learns from results: the
//! latency-aware balancer, outlier detection, active health checks and the
//! retry policy each read the same [`Outcome`].

/// The result of one try (a proxied request or a health check probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A response head arrived with this status code.
    Response(u16),
    /// No connection could be made, so nothing of the request was sent.
    ConnectFailure,
    /// The connection broke after the request (or part of it) was sent and
    /// before a response head arrived.
    Reset,
    /// The try's own timeout fired before a response head arrived.
    Timeout,
}

impl Outcome {
    /// Whether the endpoint failed this try: a 5xx status or no response at
    /// all. 4xx statuses are the client's doing and count as successes.
    #[inline]
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Response(status) => status >= 500,
            Outcome::ConnectFailure | Outcome::Reset | Outcome::Timeout => true,
        }
    }

    /// Whether a response head arrived (of any status).
    pub fn is_response(self) -> bool {
        matches!(self, Outcome::Response(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_5xx_and_missing_responses() {
        let table = [
            (Outcome::Response(200), false),
            (Outcome::Response(404), false),
            (Outcome::Response(499), false),
            (Outcome::Response(500), true),
            (Outcome::Response(503), true),
            (Outcome::ConnectFailure, true),
            (Outcome::Reset, true),
            (Outcome::Timeout, true),
        ];
        for (outcome, failure) in table {
            assert_eq!(outcome.is_failure(), failure, "{outcome:?}");
            assert_eq!(outcome.is_response(), matches!(outcome, Outcome::Response(_)));
        }
    }
}
