//! One string column of a Parquet file, row by row, through parquet's column reader (no
//! arrow): the way HF datasets ship text (`text`/`content` columns, snappy or zstd pages).
//!
//! Memory holds one batch of at most [`BATCH`] rows of the column. Null rows are skipped
//! (they hold no document); a column that is not a UTF-8 byte array is an error naming it.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;

use crate::data::documents::Document;
use crate::error::TrainError;

/// Rows read per column-reader call.
const BATCH: usize = 1024;

pub struct ParquetTextReader {
    path: PathBuf,
    file: SerializedFileReader<File>,
    column: usize,
    max_def: i16,
    row_group: usize,
    /// The current row group's column reader and its rows left to read.
    current: Option<(ColumnReader, usize)>,
    /// Decoded rows waiting to be returned: (row number, text or null).
    pending: VecDeque<(u64, Option<String>)>,
    next_row: u64,
    total_rows: u64,
}

impl ParquetTextReader {
    pub fn open(path: &Path, field: &str) -> Result<Self, TrainError> {
        let err = |m: String| TrainError::data(path, m);
        let f = File::open(path).map_err(|e| TrainError::io(path, e))?;
        let file = SerializedFileReader::new(f)
            .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
        let meta = file.metadata();
        let schema = meta.file_metadata().schema_descr();
        let names: Vec<String> = (0..schema.num_columns())
            .map(|i| schema.column(i).path().string())
            .collect();
        let column = names.iter().position(|n| n == field).ok_or_else(|| {
            err(format!(
                "no column `{field}` (columns: {})",
                names.join(", ")
            ))
        })?;
        let max_def = schema.column(column).max_def_level();
        let total_rows = meta.file_metadata().num_rows().max(0) as u64;
        Ok(ParquetTextReader {
            path: path.to_path_buf(),
            file,
            column,
            max_def,
            row_group: 0,
            current: None,
            pending: VecDeque::new(),
            next_row: 0,
            total_rows,
        })
    }

    pub fn fraction_done(&self) -> f64 {
        if self.total_rows == 0 {
            1.0
        } else {
            (self.next_row as f64 / self.total_rows as f64).min(1.0)
        }
    }

    pub fn next_doc(&mut self) -> Result<Option<Document>, TrainError> {
        loop {
            while let Some((row, text)) = self.pending.pop_front() {
                if let Some(text) = text {
                    return Ok(Some(Document {
                        text,
                        location: row,
                    }));
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Decodes the next batch into `pending`; false at the end of the file.
    fn fill(&mut self) -> Result<bool, TrainError> {
        let path = self.path.clone();
        let err = |m: String| TrainError::data(&path, m);
        loop {
            if let Some((reader, left)) = &mut self.current {
                if *left > 0 {
                    let ColumnReader::ByteArrayColumnReader(r) = reader else {
                        unreachable!("checked when the row group was opened")
                    };
                    let mut values: Vec<ByteArray> = Vec::new();
                    let mut defs: Vec<i16> = Vec::new();
                    let want = (*left).min(BATCH);
                    let (records, _, _) = r
                        .read_records(want, Some(&mut defs), None, &mut values)
                        .map_err(|e| err(format!("row {}: {e}", self.next_row)))?;
                    if records == 0 {
                        *left = 0;
                        continue;
                    }
                    *left -= records.min(*left);
                    let mut vals = values.into_iter();
                    for i in 0..records {
                        let row = self.next_row;
                        self.next_row += 1;
                        let present =
                            self.max_def == 0 || defs.get(i).is_some_and(|&d| d == self.max_def);
                        let text = if present {
                            let v = vals
                                .next()
                                .ok_or_else(|| err(format!("row {row}: value missing")))?;
                            let s = std::str::from_utf8(v.data()).map_err(|e| {
                                err(format!("row {row}: column is not valid UTF-8 ({e})"))
                            })?;
                            Some(s.to_owned())
                        } else {
                            None
                        };
                        self.pending.push_back((row, text));
                    }
                    return Ok(true);
                }
            }
            if self.row_group >= self.file.num_row_groups() {
                return Ok(false);
            }
            let rg = self
                .file
                .get_row_group(self.row_group)
                .map_err(|e| err(format!("row group {}: {e}", self.row_group)))?;
            let rows = rg.metadata().num_rows().max(0) as usize;
            let reader = rg
                .get_column_reader(self.column)
                .map_err(|e| err(format!("row group {}: {e}", self.row_group)))?;
            if !matches!(reader, ColumnReader::ByteArrayColumnReader(_)) {
                return Err(err(format!(
                    "column {} is not a string (byte array) column",
                    self.column
                )));
            }
            self.row_group += 1;
            self.current = Some((reader, rows));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parquet::data_type::ByteArrayType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    /// Writes a one-column Parquet file with two row groups.
    pub fn write_text_parquet(path: &Path, groups: &[&[&str]]) {
        let schema = Arc::new(
            parse_message_type("message doc { required binary text (UTF8); required int32 n; }")
                .unwrap(),
        );
        let props = Arc::new(WriterProperties::builder().build());
        let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        for g in groups {
            let mut rg = w.next_row_group().unwrap();
            let mut i = 0;
            while let Some(mut col) = rg.next_column().unwrap() {
                if i == 0 {
                    let vals: Vec<ByteArray> = g.iter().map(|s| ByteArray::from(*s)).collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&vals, None, None)
                        .unwrap();
                } else {
                    let vals: Vec<i32> = (0..g.len() as i32).collect();
                    col.typed::<parquet::data_type::Int32Type>()
                        .write_batch(&vals, None, None)
                        .unwrap();
                }
                col.close().unwrap();
                i += 1;
            }
            rg.close().unwrap();
        }
        w.close().unwrap();
    }

    #[test]
    fn reads_a_string_column_across_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        write_text_parquet(&path, &[&["alpha", "beta"], &["gamma"]]);
        let mut r = ParquetTextReader::open(&path, "text").unwrap();
        let mut docs = Vec::new();
        while let Some(d) = r.next_doc().unwrap() {
            docs.push((d.location, d.text));
        }
        assert_eq!(
            docs,
            vec![(0, "alpha".into()), (1, "beta".into()), (2, "gamma".into())]
        );
        let e = ParquetTextReader::open(&path, "content")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no column `content`") && e.contains("text, n"),
            "{e}"
        );
        let e = ParquetTextReader::open(&path, "n")
            .unwrap()
            .next_doc()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a string"), "{e}");
    }
}
