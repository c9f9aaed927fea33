"""Rule generator_quality: how well a scene generator draws its classes (quality.json, samples.png)."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.data import scenes
from synthsod.generators.quality import evaluate_generator, sample_grid, write_quality
from synthsod.workflow import load_generator, run_rule


def main(smk):
    quality, world = smk.params.quality, smk.params.world
    with gpu_lease() as lease:
        net = load_generator(smk, torch_device(lease)).net
        report = evaluate_generator(
            net,
            world_seed=world["seed"],
            num_classes=scenes.NUM_CLASSES,
            truncations=quality["truncations"],
            n_train=quality["classifier_scenes"],
            n_test=quality["heldout_scenes"],
            n_samples=quality["samples"],
            classifier_steps=quality["classifier_steps"],
            seed=quality["seed"],
            shape_judge=quality["shape_judge"],
        )
        sample_grid(
            net,
            smk.output.samples,
            num_classes=scenes.NUM_CLASSES,
            class_names=scenes.CLASS_NAMES,
            per_class=quality["grid_per_class"],
            truncation=quality["truncations"][0],
            seed=quality["seed"],
        )
    write_quality(report, smk.output.quality)
    first = report["truncations"][str(float(quality["truncations"][0]))]
    return (
        f"generator {smk.wildcards.gen}: class consistency {first['class_consistency']:.3f} "
        f"(judge accuracy {report['classifier']['heldout_accuracy']:.3f}), Frechet distance "
        f"{first['frechet_distance']:.2f} vs real-vs-real {report['frechet_distance_real_vs_real']:.2f}"
        + (f"; shape consistency {first['shape_consistency']:.3f}" if "shape_consistency" in first else "")
    )


run_rule(snakemake, main)  # noqa: F821
