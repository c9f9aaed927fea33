"""Rule gmask_train: train G_mask (and D_q) on the few-shot set; measure it on held-out labelled pairs."""

from dataclasses import asdict

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.io import write_json_atomic
from synthsod.core.settings import from_section
from synthsod.generators.latent_table import read_latent_table, table_truncation
from synthsod.sodgan.dq import QualityDiscriminator, save_dq
from synthsod.sodgan.gmask_infer import heldout_metrics, save_gmask
from synthsod.sodgan.gmask_train import GMaskConfig, labelled_pairs, train_gmask
from synthsod.workflow import checkpoint_path, load_generator, run_rule


def main(smk):
    spec = smk.params.gmask
    cfg = from_section(GMaskConfig, spec, where="gmask", ignore=("dq", "eval_pairs", "seed"))
    selection = read_latent_table(smk.input.selection)
    latents = read_latent_table(smk.input.latents)
    heldout = latents[~latents["id"].isin(selection["id"])].head(spec["eval_pairs"])
    truncation = table_truncation(selection)
    with gpu_lease() as lease:
        device = torch_device(lease)
        generator = load_generator(smk, device)
        dq_spec = spec["dq"]
        dq = (
            QualityDiscriminator(
                dq_spec["backbone"], dq_spec["backbone_weights"], dq_spec["input_size"], seed=spec["seed"]
            ).to(device)
            if dq_spec["enabled"]
            else None
        )
        result = train_gmask(
            generator,
            labelled_pairs(selection, generator.resolution),
            truncation=truncation,
            cfg=cfg,
            dq=dq,
            device=device,
            seed=spec["seed"],
            checkpoint_path=checkpoint_path(smk.output.gmask, smk.params),
        )
        gmask = result["gmask"]
        metrics = {
            "train": heldout_metrics(gmask, generator, selection, truncation),
            "heldout": heldout_metrics(gmask, generator, heldout, truncation),
            "parameters": gmask.num_parameters(),
            "steps": result["steps"],
            "final_losses": result["final"],
            "config": asdict(cfg),
            "dq": dq is not None,
            "device": lease.device,
        }
    info = {"generator": smk.params.generator["model"], "key": smk.wildcards.key, "truncation": truncation}
    save_gmask(smk.output.gmask, gmask, cfg, **info)
    save_dq(smk.output.dq, dq, dq_spec["backbone"], **info)
    write_json_atomic(smk.output.metrics, metrics)
    checkpoint_path(smk.output.gmask, smk.params).unlink(missing_ok=True)
    held = metrics["heldout"]
    return (
        f"G_mask: {metrics['parameters']} parameters; held-out IoU {held.get('iou', float('nan')):.3f}, "
        f"Dice {held.get('dice', float('nan')):.3f} on {held.get('pairs', 0)} pairs"
    )


run_rule(snakemake, main)  # noqa: F821
