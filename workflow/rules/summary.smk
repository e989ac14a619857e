# summary.tsv: one row per sample (sample, sequences, viral, regions, proviruses, viral_bases),
# read from each sample's run.json and sequences.tsv by workflow/scripts/summarize.py. It runs
# on the host even under apptainer (`container: False`): the script needs only the standard
# library, and a `script:` inside an image runs the image's Python on the host's Snakemake
# modules, which breaks when the two Pythons differ.


rule summary:
    input:
        runs=expand(RUN_FILES["run"], sample=SAMPLES),
        sequences=expand(RUN_FILES["sequences"], sample=SAMPLES),
    output:
        SUMMARY,
    params:
        samples=list(SAMPLES),
    log:
        f"{OUT}/logs/summary.log",
    localrule: True
    container: False
    script:
        "../scripts/summarize.py"
