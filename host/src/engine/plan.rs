//! Planning: every table's mapping and transform chain, checked against the
//! real source schema before a single row moves.

use super::batch::RowFailure;
use super::mapping::Mapping;
use super::transforms::TransformStep;
use crate::config::{ErrorPolicy, Migration, TableSpec, TransformSpec};
use crate::drivers::{Native, Shape, Source};
use crate::model::value::TransformContext;
use crate::model::value::{Column, Row, TableInfo, to_json, to_text};
use crate::runtime::Runtime;
use crate::runtime::plugins;

/// Everything needed to move one table.
#[derive(Clone)]
pub struct TablePlan {
    /// The table's settings from the migration file.
    pub spec: TableSpec,
    /// The source table as discovered.
    pub source: TableInfo,
    /// Source → mapped columns.
    pub mapping: Mapping,
    /// Transform steps, in order.
    pub steps: Vec<TransformStep>,
    /// The schema written to the destination.
    pub output: Vec<Column>,
    /// The row-error policy.
    pub policy: ErrorPolicy,
    /// Source column indices that name a row in error reports.
    pub key: Vec<usize>,
    /// What the transforms are told about this run.
    pub ctx: TransformContext,
    /// Output columns that carry a source column unchanged, with what its
    /// native type says (array element, decimal precision): a destination
    /// that has such types recreates them.
    pub natives: Vec<(String, Native)>,
}

/// A problem found while planning, naming the table and the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("table `{table}`: {}", problems.join("\n  "))]
pub struct PlanError {
    /// The source table.
    pub table: String,
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Why a transform step could not be set up.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The plugin's file was not found or did not match its checksum.
    #[error(transparent)]
    Locate(#[from] plugins::LocateError),
    /// The runtime could not load the plugin.
    #[error(transparent)]
    Load(#[from] crate::runtime::RuntimeError),
    /// The plugin refused its settings or input schema, or failed.
    #[error(transparent)]
    Configure(#[from] crate::runtime::PluginFailure),
}

/// Plans every table of a migration; all problems are collected.
pub async fn plan(
    m: &Migration,
    source: &dyn Source,
    runtime: &Runtime,
    run_started_at: i64,
) -> Result<Vec<TablePlan>, Vec<PlanError>> {
    tracing::debug!(migration = %m.name, "planning: discovering the source catalogue");
    let discovered = source.discover().await.map_err(|e| {
        vec![PlanError {
            table: "*".into(),
            problems: vec![e.to_string()],
        }]
    })?;
    plan_tables(m, source, &discovered, runtime, run_started_at).await
}

/// Plans every selected table against tables already discovered.
pub async fn plan_tables(
    m: &Migration,
    source: &dyn Source,
    discovered: &[TableInfo],
    runtime: &Runtime,
    run_started_at: i64,
) -> Result<Vec<TablePlan>, Vec<PlanError>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for planned in plan_each(m, source, discovered, runtime, run_started_at).await {
        match planned {
            Ok(plan) => plans.push(plan),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

/// Plans every selected table on its own: one table's problems leave the
/// others' plans whole.
pub async fn plan_each(
    m: &Migration,
    source: &dyn Source,
    discovered: &[TableInfo],
    runtime: &Runtime,
    run_started_at: i64,
) -> Vec<Result<TablePlan, PlanError>> {
    let names: Vec<&str> = discovered.iter().map(|t| t.name.as_str()).collect();
    let mut planned = Vec::new();
    for spec in &m.selected_tables(&names) {
        let plan = plan_table(m, spec, source, discovered, runtime, run_started_at).await;
        planned.push(plan.map_err(|problems| PlanError {
            table: spec.source.clone(),
            problems,
        }));
    }
    planned
}

async fn plan_table(
    m: &Migration,
    spec: &TableSpec,
    source: &dyn Source,
    discovered: &[TableInfo],
    runtime: &Runtime,
    run_started_at: i64,
) -> Result<TablePlan, Vec<String>> {
    let Some(info) = discovered.iter().find(|t| t.name == spec.source).cloned() else {
        let names: Vec<&str> = discovered.iter().map(|t| t.name.as_str()).collect();
        return Err(vec![format!(
            "{}: table `{}` not found{}; the source has: {}",
            source.describe(),
            spec.source,
            super::mapping::suggestion(&spec.source, names.iter().copied()),
            names.join(", ")
        )]);
    };
    let mapping = Mapping::new(spec, &info)?;
    let key = key_columns(spec, &info)?;
    let ctx = TransformContext {
        migration: m.name.clone(),
        table: spec.destination().to_string(),
        run_started_at,
    };
    let mut schema = mapping.output.clone();
    let mut steps = Vec::new();
    for (i, t) in spec.transforms.iter().enumerate() {
        let at = format!("transforms[{i}] ({})", t.plugin);
        let step = plan_step(m, t, &ctx, schema, runtime)
            .await
            .map_err(|e| vec![format!("{at}: {e}")])?;
        schema = step.output.clone();
        steps.push(step);
    }
    let natives = match spec.arrays_as_json {
        true => Vec::new(),
        false => native_columns(source, &info, &mapping, &schema, steps.is_empty()).await,
    };
    Ok(TablePlan {
        spec: spec.clone(),
        source: info,
        policy: m.policy(spec),
        mapping,
        steps,
        output: schema,
        key,
        ctx,
        natives,
    })
}

/// The output columns that pass a source column through (neither
/// value-mapped nor retyped by the mapping or a transform), with what the
/// source's native type says of them. A decimal's precision is kept only
/// when no transform runs: a transform may compute values with more digits,
/// which a narrower column would refuse (or PostgreSQL round).
async fn native_columns(
    source: &dyn Source,
    info: &TableInfo,
    mapping: &Mapping,
    output: &[Column],
    untransformed: bool,
) -> Vec<(String, Native)> {
    let Ok(natives) = source.native_types(info).await else {
        return Vec::new();
    };
    let fits = |name: &str, native: Native| {
        output
            .iter()
            .any(|o| o.name == name && native.fits(o.type_))
    };
    mapping
        .columns()
        .iter()
        .filter(|c| c.passes_through())
        .filter_map(|c| {
            let native = natives.get(c.source).copied().flatten()?;
            let kept = untransformed || matches!(native, Native::Array(_));
            (kept && native.fits(c.to.type_) && fits(&c.to.name, native))
                .then(|| (c.to.name.clone(), native))
        })
        .collect()
}

/// Loads a plugin and configures it once against its input schema, which
/// checks its settings and yields its output schema.
async fn plan_step(
    m: &Migration,
    t: &TransformSpec,
    ctx: &TransformContext,
    input: Vec<Column>,
    runtime: &Runtime,
) -> Result<TransformStep, StepError> {
    tracing::debug!(migration = %m.name, table = %ctx.table, "planning: configuring transform `{}`", t.plugin);
    let (name, wasm) = plugins::locate(&t.plugin, &m.base_dir, runtime, t.sha256.as_deref())?;
    let grants = crate::drivers::grants(&t.grants, &m.base_dir);
    let plugin = runtime.load_transform(&name, &wasm, m.limits(t), grants)?;
    let config = serde_json::to_string(&t.config).expect("TOML values serialize to JSON");
    let instance = plugin.instantiate(ctx, &config, &input).await?;
    let output = instance.output_schema().to_vec();
    Ok(TransformStep {
        plugin,
        config,
        input,
        output,
    })
}

fn key_columns(spec: &TableSpec, info: &TableInfo) -> Result<Vec<usize>, Vec<String>> {
    let names = if spec.key.is_empty() {
        &info.primary_key
    } else {
        &spec.key
    };
    names
        .iter()
        .map(|k| {
            info.columns
                .iter()
                .position(|c| &c.name == k)
                .ok_or_else(|| {
                    vec![format!(
                        "key: the source table has no column `{k}`{}",
                        super::mapping::suggestion(k, info.columns.iter().map(|c| c.name.as_str()))
                    )]
                })
        })
        .collect()
}

impl TablePlan {
    /// What the destination table holds: the output columns and the native
    /// types they keep.
    pub fn shape(&self) -> Shape<'_> {
        Shape {
            columns: &self.output,
            natives: &self.natives,
        }
    }

    /// This plan writing to another table (a sync's scratch table) for
    /// migration `migration`: the same source table, mapping and
    /// transforms, nothing planned again.
    pub fn restaged(&self, spec: TableSpec, migration: &str) -> TablePlan {
        let ctx = TransformContext {
            migration: migration.to_string(),
            table: spec.destination().to_string(),
            run_started_at: self.ctx.run_started_at,
        };
        TablePlan {
            spec,
            ctx,
            ..self.clone()
        }
    }

    /// A plan for `spec`, which reads this plan's source table with no
    /// transforms (a sync's copy of the keys): mapped from the table as
    /// discovered, without reading the catalogue again. Its native types
    /// are asked of `source` as planning an untransformed table asks them,
    /// so a decimal key keeps its precision even when this plan's
    /// transforms made it drop it.
    pub async fn untransformed(
        &self,
        spec: TableSpec,
        migration: &str,
        source: &dyn Source,
    ) -> Result<TablePlan, Vec<String>> {
        assert!(spec.transforms.is_empty(), "a plan without transforms");
        let mapping = Mapping::new(&spec, &self.source)?;
        let key = key_columns(&spec, &self.source)?;
        let output = mapping.output.clone();
        let natives = match spec.arrays_as_json {
            true => Vec::new(),
            false => native_columns(source, &self.source, &mapping, &output, true).await,
        };
        let plan = self.restaged(spec, migration);
        Ok(TablePlan {
            mapping,
            steps: Vec::new(),
            output,
            key,
            natives,
            ..plan
        })
    }

    /// Describes a failed row for reports, flagging and the stop policy.
    pub fn failure(
        &self,
        row: &Row,
        position: u64,
        stage: String,
        column: Option<String>,
        value: Option<String>,
        message: String,
    ) -> RowFailure {
        let columns = &self.source.columns;
        let key = self.key_text(row);
        let json = columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>();
        let table = self.spec.stands_for.as_deref();
        RowFailure {
            table: table.unwrap_or(self.spec.destination()).to_string(),
            position,
            key,
            stage,
            column,
            value,
            message,
            row: json.into(),
        }
    }

    /// The output columns that hold the source key, if all of them survive
    /// the mapping and the transforms (empty otherwise).
    pub fn output_key(&self) -> Vec<usize> {
        let key: Option<Vec<usize>> = self
            .key
            .iter()
            .map(|&k| {
                let mapped = self.mapping.columns().iter().find(|c| c.source == k)?;
                self.output.iter().position(|c| c.name == mapped.to.name)
            })
            .collect();
        key.unwrap_or_default()
    }

    /// The names of [`TablePlan::output_key`]'s columns.
    pub fn output_key_names(&self) -> Vec<String> {
        self.output_key()
            .into_iter()
            .map(|i| self.output[i].name.clone())
            .collect()
    }

    /// The key that names a source row in reports (`id=42`), if the table
    /// has one.
    pub fn key_text(&self, row: &Row) -> Option<String> {
        let columns = &self.source.columns;
        (!self.key.is_empty()).then(|| {
            self.key
                .iter()
                .map(|&k| {
                    let value = to_text(&row[k]).unwrap_or_else(|| "null".into());
                    format!("{}={value}", columns[k].name)
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The source primary key of a row, as a checkpoint records it.
    pub fn order_key(&self, row: &Row) -> Option<Vec<Option<String>>> {
        if self.source.primary_key.is_empty() {
            return None;
        }
        let columns = &self.source.columns;
        let key = self.source.primary_key.iter().map(|k| {
            let i = columns
                .iter()
                .position(|c| &c.name == k)
                .expect("discovered keys are columns");
            to_text(&row[i])
        });
        Some(key.collect())
    }

    /// The source value behind a mapped column, for error reports.
    pub fn source_value(&self, row: &Row, column: &str) -> Option<String> {
        let mapped = self
            .mapping
            .columns()
            .iter()
            .find(|c| c.to.name == column)?;
        to_text(&row[mapped.source])
    }
}
