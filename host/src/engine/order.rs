//! The order tables load in: a table whose foreign keys refer to other
//! tables of the run loads after them, so children never land before their
//! parents. Tables with no such link load side by side.

use super::plan::TablePlan;
use crate::drivers::{ConnectorError, Sink};

/// The plans in waves: each wave's tables refer only to tables of earlier
/// waves (or to none of the run's), so a wave may load in parallel once the
/// waves before it are in.
pub struct Order<'a> {
    /// The waves, first to last.
    pub waves: Vec<Vec<&'a TablePlan>>,
    /// Tables whose foreign keys form a cycle (with the tables behind
    /// them): they load together in the last wave, and a child row may
    /// arrive before its parent.
    pub cycle: Vec<String>,
    /// Tables with a foreign key to themselves (a manager, a parent
    /// category): a row may arrive before the row it refers to.
    pub own_parent: Vec<String>,
}

impl Order<'_> {
    /// The tables whose rows may arrive before the rows they refer to.
    pub fn unordered(&self) -> impl Iterator<Item = &String> {
        self.cycle.iter().chain(&self.own_parent)
    }
}

/// Orders `plans` by the destination's foreign keys between their tables.
pub async fn load_order<'a>(
    sink: &dyn Sink,
    plans: &'a [TablePlan],
) -> Result<Order<'a>, ConnectorError> {
    let names: Vec<&str> = plans.iter().map(|p| p.spec.destination()).collect();
    let mut parents = Vec::with_capacity(plans.len());
    let mut own_parent = Vec::new();
    for name in &names {
        let refers = match sink.sql() {
            Some(sql) => sql.parents(name).await?,
            None => Vec::new(),
        };
        if refers.iter().any(|r| r == name) {
            own_parent.push(name.to_string());
        }
        let within: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, other)| *other != name && refers.iter().any(|r| r == *other))
            .map(|(i, _)| i)
            .collect();
        parents.push(within);
    }
    let (waves, rest) = levels(&parents);
    let mut order = Order {
        waves: waves
            .into_iter()
            .map(|wave| wave.into_iter().map(|i| &plans[i]).collect())
            .collect(),
        cycle: rest.iter().map(|&i| names[i].to_string()).collect(),
        own_parent,
    };
    if !rest.is_empty() {
        order
            .waves
            .push(rest.into_iter().map(|i| &plans[i]).collect());
    }
    Ok(order)
}

/// Kahn's levels: wave 0 has no parents, wave n only parents in waves
/// before it; what is left sits on a cycle or behind one.
fn levels(parents: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut placed = vec![false; parents.len()];
    let mut waves = Vec::new();
    loop {
        let wave: Vec<usize> = (0..parents.len())
            .filter(|&i| !placed[i] && parents[i].iter().all(|&p| placed[p]))
            .collect();
        if wave.is_empty() {
            break;
        }
        for &i in &wave {
            placed[i] = true;
        }
        waves.push(wave);
    }
    let rest = (0..parents.len()).filter(|&i| !placed[i]).collect();
    (waves, rest)
}

#[cfg(test)]
mod tests {
    use super::levels;

    #[test]
    fn parents_come_first_and_a_cycle_is_left_for_last() {
        // 0 ← 1 ← 2, 3 alone.
        let (waves, rest) = levels(&[vec![], vec![0], vec![1], vec![]]);
        assert_eq!(waves, [vec![0, 3], vec![1], vec![2]]);
        assert!(rest.is_empty());
        // 1 ↔ 2, and 3 behind them.
        let (waves, rest) = levels(&[vec![], vec![2], vec![1], vec![1]]);
        assert_eq!(waves, [vec![0]]);
        assert_eq!(rest, [1, 2, 3]);
    }
}
