"""`kws-search teacher`: train the base CRNN on a dataset and save it under checkpoints/."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import add_data_options, positive_int, teacher_file

HELP = """examples:
  kws-search teacher                       # hidden 64, trained to convergence, on data/synth
  kws-search teacher --recipe seminar      # the seminar's recipe (lr 3e-4, 20 epochs)
  kws-search teacher --members 4 --force   # distilled from the mean of 4 copies (4x slower)
  kws-search teacher --hidden 32 --epochs 30 --force
  kws-search teacher --import seminar_crnn.pt                  # your own, seminar format
  kws-search teacher --import bi.pt --import-config bi.yaml    # e.g. bidirectional: true
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("teacher", help="train the teacher CRNN", epilog=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser)
    parser.add_argument("--hidden", type=positive_int, default=64, help="GRU hidden size")
    parser.add_argument("--recipe", choices=("converged", "seminar"), default="converged",
                        help="converged (default): lr 2e-3, halved when validation stalls, "
                             "until it stops improving; seminar: lr 3e-4 for 20 epochs, "
                             "as in the course reports")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="at most this many epochs (default: 80 converged, 20 seminar)")
    parser.add_argument("--members", type=positive_int, default=None,
                        help="train this many copies (seeds seed, seed+1, ...) and distill the "
                             "teacher from their mean (default: 1, one model, the task's "
                             "base model)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and the batches (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="retrain (or re-import) even when a matching teacher exists")
    parser.add_argument("--import", dest="import_file", type=Path, default=None, metavar="FILE",
                        help="use your own teacher: a state_dict of the course seminar's CRNN "
                             "(torch.save(model.state_dict(), FILE)); it is measured on --data "
                             "and saved as the teacher checkpoint, nothing is trained")
    parser.add_argument("--import-config", type=Path, default=None, metavar="YAML",
                        help="the seminar settings of an imported teacher (n_mels, kernel_size, "
                             "stride, cnn_out_channels, hidden_size, gru_num_layers, "
                             "bidirectional, num_classes); default: the seminar's")
    parser.add_argument("--bidirectional", action="store_true", default=None,
                        help="the imported teacher's GRU is bidirectional")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kws_search.data.features import prepare_features
    from kws_search.data.front_end import FeatureConfig
    from kws_search.models import CRNNConfig
    from kws_search.teacher import (
        MEMBERS,
        RECIPES,
        check_teacher_features,
        load_teacher,
        train_teacher,
    )

    path = teacher_file(args)
    if args.import_file is not None:
        return _import(args, path)
    # a teacher already there is reused if it matches and refused if not, never overwritten
    # without --force: it may be imported, or be what other studies were measured against
    keep = path.is_file() and not args.force
    if keep:
        check_teacher_features(path, FeatureConfig())  # before computing any features
    features = prepare_features(args.data, args.keyword, FeatureConfig(), args.cache)
    model_config = CRNNConfig(hidden=args.hidden)
    if keep:
        _, metrics = load_teacher(path, features)
        print(f"teacher {path} matches this dataset (val {metrics['val_quality']:.3e}, "
              f"test {metrics['test_quality']:.3e}); --force retrains it")
        return 0
    recipe = replace(RECIPES[args.recipe], seed=args.seed)
    if args.epochs is not None:
        recipe = replace(recipe, epochs=args.epochs)
    members = args.members or MEMBERS
    _, metrics = train_teacher(features, path, model_config, recipe, members=members)
    print(f"teacher saved to {path}")
    if members > 1:
        copies = ", ".join(f"{q:.3e}" for q in metrics["member_val_quality"])
        print(f"  distilled from the mean of {members} copies (validation {copies})")
    print(f"  validation quality {metrics['val_quality']:.3e}  test {metrics['test_quality']:.3e}")
    print(f"  {metrics['params']} params, {metrics['macs']} MACs, {metrics['bytes']} bytes, "
          f"{metrics['latency_ms']:.2f} ms per clip, trained in {metrics['train_seconds']:.0f} s "
          f"(best epoch {metrics['best_epoch']})")
    return 0


def _import(args: argparse.Namespace, path: Path) -> int:
    from kws_search.checkpoint import CheckpointError
    from kws_search.data.features import prepare_features
    from kws_search.teacher_import import (
        feature_config,
        import_teacher,
        load_config,
        read_state_dict,
        to_crnn_state,
    )

    config = load_config(args.import_config, bidirectional=args.bidirectional)
    to_crnn_state(read_state_dict(args.import_file), config)  # a misfit fails before the data
    if path.is_file() and not args.force:
        raise CheckpointError(f"teacher {path} exists; --force replaces it with the imported "
                              "one, or pass --teacher PATH")
    features = prepare_features(args.data, args.keyword, feature_config(config), args.cache)
    _, metrics = import_teacher(args.import_file, config, features, path)
    print(f"imported {args.import_file} ({config.describe()}) as teacher {path}")
    print(f"  validation quality {metrics['val_quality']:.3e}  test {metrics['test_quality']:.3e}")
    print(f"  {metrics['params']} params, {metrics['macs']} MACs, {metrics['bytes']} bytes, "
          f"{metrics['latency_ms']:.2f} ms per clip")
    if config.bidirectional:
        print("  bidirectional: it teaches students, which stay unidirectional so they stream; "
              "it cannot be exported as a streaming model itself")
    return 0
