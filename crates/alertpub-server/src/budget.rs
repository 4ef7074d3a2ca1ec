//! The server-wide budget of request-body bytes being read and parsed.
//!
//! Each body takes its share as its bytes arrive, in units of [`UNIT`] bytes, and keeps it until
//! its handler is done with it (parsing and normalising included). The budget bounds the memory
//! that request bodies hold at once, whatever the number of connections, HTTP/2 streams or slow
//! senders.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's granularity, in bytes.
const UNIT: usize = 1024;

/// The budget.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    semaphore: Arc<Semaphore>,
    units: u32,
}

/// One body's share; dropping it gives the bytes back.
#[derive(Debug, Default)]
pub(crate) struct BudgetShare {
    permit: Option<OwnedSemaphorePermit>,
    units: u32,
}

/// The budget can never cover this many bytes: a body that large is refused before it is read,
/// since the budget is never less than the body limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverBudget;

impl BodyBudget {
    /// A budget of `bytes`, and at least one body of `max_body_bytes`.
    pub(crate) fn new(bytes: usize, max_body_bytes: usize) -> Self {
        let units = units_for(bytes.max(max_body_bytes)).clamp(1, Semaphore::MAX_PERMITS as u64);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Grows `share` to cover `bytes`, waiting until the budget has room.
    pub(crate) async fn grow(
        &self,
        share: &mut BudgetShare,
        bytes: usize,
    ) -> Result<(), OverBudget> {
        let need = u32::try_from(units_for(bytes)).map_err(|_| OverBudget)?;
        if need <= share.units {
            return Ok(());
        }
        if need > self.units {
            return Err(OverBudget);
        }
        let more = self
            .semaphore
            .clone()
            .acquire_many_owned(need - share.units)
            .await
            .map_err(|_| OverBudget)?;
        match &mut share.permit {
            Some(permit) => permit.merge(more),
            None => share.permit = Some(more),
        }
        share.units = need;
        Ok(())
    }

    /// The bytes handed out now.
    pub(crate) fn in_use(&self) -> usize {
        (self.units as usize - self.semaphore.available_permits()) * UNIT
    }
}

fn units_for(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(UNIT as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_wait_for_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(8 * UNIT, 4 * UNIT);
        let mut first = BudgetShare::default();
        budget.grow(&mut first, 5 * UNIT).await.unwrap();
        budget.grow(&mut first, 5 * UNIT - 1).await.unwrap();
        assert_eq!(budget.in_use(), 5 * UNIT);
        let mut second = BudgetShare::default();
        budget.grow(&mut second, 3 * UNIT).await.unwrap();
        // The budget is spent: a third body waits.
        let mut third = BudgetShare::default();
        let waited = tokio::select! {
            biased;
            _ = budget.grow(&mut third, 1) => false,
            () = std::future::ready(()) => true,
        };
        assert!(waited, "a body past the budget must wait");
        drop(first);
        budget.grow(&mut third, UNIT).await.unwrap();
        assert_eq!(budget.in_use(), 4 * UNIT);
        assert_eq!(budget.grow(&mut third, 9 * UNIT).await, Err(OverBudget));
    }

    #[test]
    fn the_budget_is_never_less_than_one_body() {
        let budget = BodyBudget::new(0, 3 * UNIT);
        assert_eq!(budget.units, 3);
    }
}
