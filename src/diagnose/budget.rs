//! The bytes a diagnosis may build and hash while guessing.

use super::{GUESS_BUDGET, SkipReason};

/// The bytes built and hashed by the guesses of one diagnosis, against
/// [`GUESS_BUDGET`].
#[derive(Default)]
pub(super) struct Budget {
    pub(super) spent: usize,
}

impl Budget {
    /// Charges `bytes`, or refuses (charging nothing) when that would pass
    /// the budget.
    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), SkipReason> {
        let total = self.spent.saturating_add(bytes);
        if total > GUESS_BUDGET {
            return Err(SkipReason::BudgetSpent {
                budget: GUESS_BUDGET,
            });
        }
        self.spent = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::body::UTF8_BOM;
    use crate::diagnose::body::tests::rows_signed_and_received;
    use crate::diagnose::tests::{NOW, fake_signature};
    use crate::diagnose::{Finding, diagnose};
    use crate::{Scheme, SecretSet};

    #[test]
    fn a_charge_past_the_budget_is_refused_and_costs_nothing() {
        let mut budget = Budget::default();
        assert_eq!(budget.charge(GUESS_BUDGET - 1), Ok(()));
        assert_eq!(
            budget.charge(2),
            Err(SkipReason::BudgetSpent {
                budget: GUESS_BUDGET
            })
        );
        assert_eq!(budget.spent, GUESS_BUDGET - 1);
        assert_eq!(budget.charge(1), Ok(()));
    }

    #[test]
    fn guesses_stop_when_the_budget_is_spent() {
        // 32 secrets, none the sender's: every candidate body is hashed
        // 32 times, and the search would go through every pair of the
        // many changes that apply to pretty JSON.
        let secrets = SecretSet::new((0..32).map(|i| format!("receiver-{i}"))).unwrap();
        let (_, received) = rows_signed_and_received(700);
        let received = &received[UTF8_BOM.len()..];
        let d = diagnose(
            &Scheme::native(),
            &secrets,
            &fake_signature(),
            received,
            NOW,
        );
        assert_eq!(
            d.findings(),
            &[Finding::GuessesSkipped {
                reason: SkipReason::BudgetSpent {
                    budget: GUESS_BUDGET
                },
            }],
            "{d}"
        );
        assert!(d.guessed_bytes <= GUESS_BUDGET, "{}", d.guessed_bytes);
        assert!(d.to_string().contains("not every change"), "{d}");
    }
}
