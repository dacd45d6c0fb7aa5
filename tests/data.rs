//! The data stages end to end: vendored digits in three formats, splits, normalisation,
//! batching, prefetching, and the corpus of broken files in tests/data_bad/.

use std::path::PathBuf;
use std::sync::Arc;

use engine::data::{
    Batch, BatchConfig, BatchIter, Columns, CsvSource, DataConfig, DataError, Dataset, Fractions,
    IdFeatures, IdxSource, Normalize, NpySource, Prefetcher, Source, Split, SplitBy, Task,
    epoch_order, prepare,
};

const DIGIT_CLASS_COUNTS: [usize; 10] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn digits() -> CsvSource {
    CsvSource::new(repo("pipelines/data/digits.csv.gz"))
}

fn digits_80_20(normalize: Normalize) -> DataConfig {
    DataConfig {
        split: SplitBy::Fractions {
            source: Source::new(digits()),
            fractions: Fractions {
                train: 0.8,
                val: 0.0,
                test: 0.2,
                stratified: true,
                seed: 42,
            },
        },
        normalize,
        ids: None,
        normalize_targets: Normalize::None,
    }
}

#[test]
fn id_features_are_checked_and_left_unnormalised() {
    // The digits' pixels are whole numbers 0..=16: ids of a 17-row embedding.
    let mut config = digits_80_20(Normalize::Standardize);
    config.ids = Some(IdFeatures {
        range: 0..64,
        count: 17,
    });
    let data = prepare(&config).unwrap();
    let train = data.train.dataset();
    assert!(
        train
            .features
            .iter()
            .all(|v| v.fract() == 0.0 && (0.0..17.0).contains(v))
    );
    assert!(data.normalizer.is_identity());
    // Ids past `count` are refused, naming the sample and the feature.
    config.ids = Some(IdFeatures {
        range: 0..64,
        count: 16,
    });
    let error = prepare(&config).unwrap_err().to_string();
    assert!(
        error.contains("expected an id (a whole number in 0..16), found 16"),
        "{error}"
    );
    assert!(error.contains("sample "), "{error}");
    // Standardised features next to ids: only the others change.
    config.ids = Some(IdFeatures {
        range: 10..20,
        count: 17,
    });
    let data = prepare(&config).unwrap();
    let raw = prepare(&digits_80_20(Normalize::None)).unwrap();
    let (a, b) = (data.train.dataset(), raw.train.dataset());
    assert_eq!(a.sample(5)[10..20], b.sample(5)[10..20]);
    assert_ne!(a.sample(5)[20..], b.sample(5)[20..]);
}

#[test]
fn digits_load_with_the_published_class_counts() {
    let data = digits().load().unwrap();
    assert_eq!(data.len(), 1797);
    assert_eq!(data.shape, vec![64]);
    assert_eq!(data.classes, 10);
    assert_eq!(data.class_counts(), DIGIT_CLASS_COUNTS);
    assert!(data.features.iter().all(|&v| (0.0..=16.0).contains(&v)));
    let as_images = CsvSource {
        shape: Some(vec![8, 8]),
        task: Task::Classify { classes: Some(10) },
        ..digits()
    };
    assert_eq!(as_images.load().unwrap().shape, vec![8, 8]);
}

#[test]
fn idx_and_npy_copies_match_the_csv() {
    let csv = digits().load().unwrap();
    let idx = IdxSource::new(
        repo("pipelines/data/digits200-images.idx.gz"),
        repo("pipelines/data/digits200-labels.idx.gz"),
    )
    .load()
    .unwrap();
    let npy = NpySource::new(
        repo("pipelines/data/digits200-features.npy"),
        repo("pipelines/data/digits200-labels.npy"),
    )
    .load()
    .unwrap();
    for data in [&idx, &npy] {
        assert_eq!(data.shape, vec![8, 8]);
        assert_eq!(data.len(), 200);
        assert_eq!(data.features[..], csv.features[..200 * 64]);
        assert_eq!(data.labels[..], csv.labels[..200]);
        assert_eq!(
            data.class_counts(),
            [21, 19, 20, 21, 19, 20, 21, 20, 19, 20]
        );
    }
}

/// Rounding rule: train gets floor(0.8 × 1797) = 1437, and since the fractions sum to 1
/// the last non-zero split (test) takes the remaining 360. Each class's share of each
/// split is within 1 of proportional.
#[test]
fn stratified_80_20_split_keeps_class_proportions() {
    let data = prepare(&digits_80_20(Normalize::None)).unwrap();
    let test = data.test.expect("a test fraction was configured");
    assert!(data.val.is_none());
    assert_eq!((data.train.len(), test.len()), (1437, 360));
    for (split, fraction) in [(&data.train, 0.8), (&test, 0.2)] {
        for (count, total) in split.class_counts().iter().zip(DIGIT_CLASS_COUNTS) {
            let share = total as f64 * fraction;
            assert!((*count as f64 - share).abs() <= 1.0, "{count} vs {share}");
        }
    }
    let mut all: Vec<u32> = [data.train.indices(), test.indices()].concat();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<u32>>());
    let again = prepare(&digits_80_20(Normalize::None)).unwrap();
    assert_eq!(again.train.indices(), data.train.indices());
}

#[test]
fn standardize_uses_train_statistics_only() {
    let raw = digits().load().unwrap();
    let data = prepare(&digits_80_20(Normalize::Standardize)).unwrap();
    let train = data.train.indices();
    let mean_over = |dataset: &Dataset, rows: &[u32], j: usize| {
        rows.iter()
            .map(|&r| f64::from(dataset.sample(r as usize)[j]))
            .sum::<f64>()
            / rows.len() as f64
    };
    let all_rows: Vec<u32> = (0..1797).collect();
    let mut differs_from_all_rows = false;
    for j in 0..64 {
        let train_mean = mean_over(&raw, train, j);
        assert!((data.normalizer.offsets()[j] - train_mean).abs() < 1e-9);
        differs_from_all_rows |= (mean_over(&raw, &all_rows, j) - train_mean).abs() > 1e-6;
        // After normalising, the train split is centred with unit (or zero) spread.
        let normalised = data.train.dataset();
        let mean = mean_over(normalised, train, j);
        let var = train
            .iter()
            .map(|&r| (f64::from(normalised.sample(r as usize)[j]) - mean).powi(2))
            .sum::<f64>()
            / train.len() as f64;
        assert!(mean.abs() < 1e-5, "feature {j}: mean {mean}");
        assert!(
            var < 1e-9 || (var - 1.0).abs() < 1e-4,
            "feature {j}: variance {var}"
        );
    }
    assert!(
        differs_from_all_rows,
        "the test rows should move some means"
    );
}

#[test]
fn epoch_order_is_deterministic_and_visits_every_sample_once() {
    assert_eq!(epoch_order(7, 3, 1437), epoch_order(7, 3, 1437));
    assert_ne!(epoch_order(7, 3, 1437), epoch_order(7, 4, 1437));
    assert_ne!(epoch_order(7, 3, 1437), epoch_order(8, 3, 1437));

    // Feature = row id, so a batch's features say which rows it holds.
    let dataset = Dataset::classification(
        (0..1000).map(|i| i as f32).collect(),
        vec![1],
        vec![0; 1000],
        1,
    )
    .unwrap();
    let split = Split::new(Arc::new(dataset), (0..1000).step_by(2).collect()).unwrap();
    let config = BatchConfig {
        batch_size: 64,
        shuffle: true,
        drop_last: false,
        seed: 7,
    };
    let epoch = |e: u64| -> Vec<f32> {
        BatchIter::new(split.clone(), config.clone(), e)
            .unwrap()
            .flat_map(|b| b.features)
            .collect()
    };
    let first = epoch(0);
    let mut sorted = first.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(
        sorted,
        (0..1000).step_by(2).map(|i| i as f32).collect::<Vec<f32>>()
    );
    assert_eq!(first, epoch(0));
    assert_ne!(first, epoch(1));
}

#[test]
fn drop_last_and_resuming_at_a_batch() {
    let data = prepare(&digits_80_20(Normalize::Scale { factor: 1.0 / 16.0 })).unwrap();
    let config = |drop_last| BatchConfig {
        batch_size: 100,
        shuffle: true,
        drop_last,
        seed: 1,
    };
    let kept: Vec<Batch> = BatchIter::new(data.train.clone(), config(false), 0)
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 15);
    assert_eq!(kept[14].rows, 37);
    assert_eq!(kept[14].labels.len(), 37);
    assert_eq!(kept[14].features.len(), 37 * 64);
    assert!(kept[14].last_in_epoch);
    let dropped: Vec<Batch> = BatchIter::new(data.train.clone(), config(true), 0)
        .unwrap()
        .collect();
    assert_eq!(dropped.len(), 14);
    assert!(dropped.iter().all(|b| b.rows == 100));
    assert!(dropped[13].last_in_epoch && !kept[13].last_in_epoch);
    let same_rows = |a: &Batch, b: &Batch| a.features == b.features && a.labels == b.labels;
    assert!(dropped.iter().zip(&kept).all(|(a, b)| same_rows(a, b)));

    let two_epochs: Vec<Batch> = BatchIter::new(data.train.clone(), config(false), 0)
        .unwrap()
        .until_epoch(2)
        .collect();
    let resumed: Vec<Batch> = BatchIter::new(data.train.clone(), config(false), 0)
        .unwrap()
        .starting_at(9)
        .until_epoch(2)
        .collect();
    assert!(resumed[..] == two_epochs[9..], "resumed batches differ");
}

#[test]
fn prefetcher_yields_what_the_iterator_yields() {
    let data = prepare(&digits_80_20(Normalize::Standardize)).unwrap();
    let config = BatchConfig {
        batch_size: 32,
        shuffle: true,
        drop_last: true,
        seed: 5,
    };
    let iter = || {
        BatchIter::new(data.train.clone(), config.clone(), 2)
            .unwrap()
            .starting_at(3)
            .until_epoch(4)
    };
    let direct: Vec<Batch> = iter().collect();
    let mut prefetcher = Prefetcher::spawn(iter(), 2).unwrap();
    let mut fetched = Vec::new();
    while let Some(batch) = prefetcher.next() {
        fetched.push(batch.clone());
        prefetcher.recycle(batch);
    }
    assert_eq!(fetched.len(), 2 * 44 - 3);
    assert!(fetched == direct, "prefetched batches differ");
}

/// Loads a corpus file and returns the error message.
fn error_of(source: Source) -> String {
    match source.load() {
        Ok(data) => panic!(
            "{} loaded {} rows; expected an error",
            source.describe(),
            data.len()
        ),
        Err(error) => error.to_string(),
    }
}

fn bad(name: &str) -> PathBuf {
    repo("tests/data_bad").join(name)
}

fn bad_csv(name: &str) -> Source {
    Source::new(CsvSource::new(bad(name)))
}

#[test]
fn broken_files_name_the_file_and_row() {
    let classes_10 = Source::new(CsvSource {
        task: Task::Classify { classes: Some(10) },
        ..CsvSource::new(bad("label_out_of_range.csv"))
    });
    let header_only = Source::new(CsvSource {
        header: true,
        features: Columns::Range { start: 0, end: 3 },
        ..CsvSource::new(bad("header_only.csv"))
    });
    let cases: Vec<(Source, &str, &[&str])> = vec![
        (
            bad_csv("ragged_row.csv"),
            "ragged_row.csv",
            &["row 3:", "expected 4 columns", "found 3"],
        ),
        (
            bad_csv("non_numeric.csv"),
            "non_numeric.csv",
            &["row 4, column 2", "\"abc\""],
        ),
        (
            classes_10,
            "label_out_of_range.csv",
            &["row 2, column 4", "label 10", "0..10"],
        ),
        (
            bad_csv("negative_label.csv"),
            "negative_label.csv",
            &["row 3, column 4", "label -1"],
        ),
        (header_only, "header_only.csv", &["empty", "no data rows"]),
        (bad_csv("empty.csv"), "empty.csv", &["the file is empty"]),
        (
            bad_csv("truncated.csv.gz"),
            "truncated.csv.gz",
            &["gzip stream is truncated"],
        ),
        (
            bad_csv("no_such_file.csv"),
            "no_such_file.csv",
            &["file not found"],
        ),
        (
            Source::new(IdxSource::new(
                bad("truncated-images.idx"),
                bad("labels10.idx"),
            )),
            "truncated-images.idx",
            &["truncated", "promises 640 bytes", "found 300"],
        ),
        (
            Source::new(IdxSource::new(
                bad("wrong_magic-images.idx"),
                bad("labels10.idx"),
            )),
            "wrong_magic-images.idx",
            &["wrong magic number 0x03080000", "IDX is big-endian"],
        ),
        (
            Source::new(NpySource::new(
                bad("truncated-features.npy"),
                bad("labels10.npy"),
            )),
            "truncated-features.npy",
            &["truncated", "promises 160 bytes", "found 100"],
        ),
        (
            Source::new(NpySource::new(
                bad("labels10.npy"),
                bad("no_such_labels.npy"),
            )),
            "no_such_labels.npy",
            &["file not found"],
        ),
    ];
    for (source, file, fragments) in cases {
        let message = error_of(source);
        assert!(
            message.starts_with(&bad(file).display().to_string()),
            "{message}"
        );
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "expected {fragment:?} in: {message}"
            );
        }
    }
}

#[test]
fn every_prefix_of_every_corpus_file_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("engine-data-prefixes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "truncated-images.idx",
        "truncated-features.npy",
        "ragged_row.csv",
    ] {
        let bytes = std::fs::read(bad(name)).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let path = dir.join(name);
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let source = match name {
                "truncated-images.idx" => Source::new(IdxSource::new(&path, bad("labels10.idx"))),
                "truncated-features.npy" => Source::new(NpySource::new(&path, bad("labels10.npy"))),
                _ => Source::new(CsvSource::new(&path)),
            };
            if let Err(error) = source.load() {
                assert!(error.to_string().contains(name), "{error}");
                assert!(!matches!(error, DataError::Io { .. }), "{error}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A label column of class names: each row's name is its index in the sorted names, and a
/// name outside them is refused with its row (a header row counts as row 1).
#[test]
fn class_names_are_numbered_in_order_and_unknown_names_located() {
    let mut iris = CsvSource::new(repo("pipelines/data/iris.csv"));
    iris.header = true;
    iris.task = Task::Classify { classes: Some(3) };
    iris.class_names = Some(vec![
        "setosa".to_string(),
        "versicolor".to_string(),
        "virginica".to_string(),
    ]);
    let data = iris.load().unwrap();
    assert_eq!(data.len(), 150);
    assert_eq!(
        (data.labels[0], data.labels[50], data.labels[149]),
        (0, 1, 2)
    );
    iris.class_names = Some(vec!["setosa".to_string(), "versicolor".to_string()]);
    iris.task = Task::Classify { classes: Some(2) };
    let error = iris.load().unwrap_err().to_string();
    assert!(error.contains("row 102"), "{error}");
    assert!(error.contains("virginica"), "{error}");
    assert!(error.contains("setosa, versicolor"), "{error}");
}

/// Columns chosen by their header names, in the order given; an unknown name lists the
/// header's.
#[test]
fn columns_are_chosen_by_header_name() {
    let mut iris = CsvSource::new(repo("pipelines/data/iris.csv"));
    iris.header = true;
    iris.features = Columns::Named(vec!["petal_width".to_string(), "sepal_length".to_string()]);
    iris.label = Columns::Named(vec!["species".to_string()]);
    iris.task = Task::Classify { classes: Some(3) };
    iris.class_names = Some(
        ["setosa", "versicolor", "virginica"]
            .map(String::from)
            .to_vec(),
    );
    let data = iris.load().unwrap();
    // The first row: 5.1, 3.5, 1.4, 0.2, setosa.
    assert_eq!(data.sample(0), [0.2, 5.1]);
    iris.features = Columns::Named(vec!["petal_widht".to_string()]);
    let error = iris.load().unwrap_err().to_string();
    assert!(error.contains("no column `petal_widht`"), "{error}");
    assert!(error.contains("sepal_length, sepal_width"), "{error}");
}
