//! A [`GroupsAccumulator`] for aggregates whose per-group state is a small
//! Rust value updated row by row (the orders of one customer, its purchase
//! days). DataFusion's fallback for plain [`Accumulator`]s boxes one
//! accumulator per group and calls it with a sliced array per group and
//! batch, which with a million customers costs more than the work itself;
//! here the input columns are converted once per batch and each row goes
//! straight to its group's state. [`RowAccumulator`] is the plain
//! [`Accumulator`] (no GROUP BY, windows) over the same state code.

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

/// One group's state of a row-by-row aggregate.
pub(crate) trait RowState: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The update inputs of one batch, converted once.
    type Batch;
    /// The merge inputs (partial states) of one batch, converted once.
    type States;
    /// Convert one batch of arguments (`self` is the empty prototype).
    fn prepare(&self, values: &[ArrayRef]) -> Result<Self::Batch>;
    /// Add row `row` of `batch`.
    fn update_row(&mut self, batch: &Self::Batch, row: usize) -> Result<()>;
    /// Convert one batch of partial states.
    fn prepare_states(&self, states: &[ArrayRef]) -> Result<Self::States>;
    /// Add partial state `row` of `states`.
    fn merge_row(&mut self, states: &Self::States, row: usize) -> Result<()>;
    /// The final values of `groups`, one row each.
    fn evaluate_all(&self, groups: Vec<Self>) -> Result<ArrayRef>;
    /// The partial states of `groups`, one row each, one array per state field.
    fn state_all(&self, groups: Vec<Self>) -> Result<Vec<ArrayRef>>;
    /// Heap bytes held.
    fn heap_size(&self) -> usize;
}

/// The groups accumulator over [`RowState`]s.
#[derive(Debug)]
pub(crate) struct RowGroups<S: RowState> {
    proto: S,
    groups: Vec<S>,
    /// Heap bytes of every group, kept up to date incrementally.
    heap: usize,
}

impl<S: RowState> RowGroups<S> {
    /// An accumulator whose new groups start as `proto`.
    pub fn new(proto: S) -> Self {
        RowGroups {
            proto,
            groups: Vec::new(),
            heap: 0,
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize(total_num_groups, self.proto.clone());
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<S> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.heap = self.groups.iter().map(RowState::heap_size).sum();
        taken
    }
}

fn included(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl<S: RowState> GroupsAccumulator for RowGroups<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let batch = self.proto.prepare(values)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if included(opt_filter, row) {
                let state = &mut self.groups[g];
                let before = state.heap_size();
                state.update_row(&batch, row)?;
                self.heap = self.heap + state.heap_size() - before;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.take(emit_to);
        self.proto.evaluate_all(groups)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        self.proto.state_all(groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let states = self.proto.prepare_states(values)?;
        for (row, &g) in group_indices.iter().enumerate() {
            let state = &mut self.groups[g];
            let before = state.heap_size();
            state.merge_row(&states, row)?;
            self.heap = self.heap + state.heap_size() - before;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // every row its own group
        let rows = values.first().map_or(0, |v| v.len());
        let mut one = RowGroups::new(self.proto.clone());
        one.resize(rows);
        let batch = self.proto.prepare(values)?;
        for row in 0..rows {
            if included(opt_filter, row) {
                one.groups[row].update_row(&batch, row)?;
            }
        }
        self.proto.state_all(one.groups)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<S>() + self.heap
    }
}

/// The plain [`Accumulator`] over one [`RowState`].
#[derive(Debug)]
pub(crate) struct RowAccumulator<S: RowState> {
    proto: S,
    state: S,
}

impl<S: RowState> RowAccumulator<S> {
    /// An accumulator that starts as `proto` (and starts again as `proto`
    /// after each `state`).
    pub fn new(proto: S) -> Self {
        RowAccumulator {
            state: proto.clone(),
            proto,
        }
    }
}

fn rows(arrays: &[ArrayRef]) -> usize {
    arrays.first().map_or(0, |a| a.len())
}

impl<S: RowState> Accumulator for RowAccumulator<S> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let batch = self.proto.prepare(values)?;
        for row in 0..rows(values) {
            self.state.update_row(&batch, row)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let prepared = self.proto.prepare_states(states)?;
        for row in 0..rows(states) {
            self.state.merge_row(&prepared, row)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let taken = std::mem::replace(&mut self.state, self.proto.clone());
        self.proto
            .state_all(vec![taken])?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // evaluated on a copy: a window may go on updating after evaluating
        let out = self.proto.evaluate_all(vec![self.state.clone()])?;
        ScalarValue::try_from_array(&out, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.proto.heap_size() + self.state.heap_size()
    }
}
