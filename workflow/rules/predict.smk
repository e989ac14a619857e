# One job per sample: `virnucpro predict` here (daemon.use false), or `virnucpro submit --wait`
# to a running daemon (daemon.use true), into <outdir>/<sample>/. A folder holding an
# interrupted run (its .virnucpro/ state) is resumed from its last finished shard; anything
# else there is a run Snakemake wants again, so it is started over (--force).


if not config["daemon"]["use"]:

    rule predict:
        input:
            sample_file,
        output:
            **RUN_FILES,
        log:
            f"{OUT}/logs/{{sample}}.log",
        params:
            outdir=sample_folder,
            args=common_args(),
            engine=engine_args(),
        threads: config["predict"]["threads"]
        resources:
            gpu=config["predict"]["gpus"],
        shell:
            "if [ -d {params.outdir:q}/.virnucpro ]; then again=--resume; else again=--force; fi; "
            "virnucpro predict {input:q} -o {params.outdir:q} $again {params.args} "
            "--threads {threads} {params.engine} > {log:q} 2>&1"

else:

    rule submit:
        input:
            sample_file,
        output:
            **RUN_FILES,
        log:
            f"{OUT}/logs/{{sample}}.log",
        params:
            # The daemon opens files by path, from its own working folder: absolute paths.
            path=lambda wildcards: shlex.quote(str(SAMPLES[wildcards.sample].absolute)),
            outdir=lambda wildcards: shlex.quote(str(Path(sample_folder(wildcards)).absolute())),
            args=common_args(),
            daemon=daemon_args(),
        threads: 1
        # A client that waits: it runs beside Snakemake, not as a cluster job of its own.
        localrule: True
        shell:
            # An unfinished run there is resumed by the daemon itself; a finished one needs --force.
            "if [ -d {params.outdir}/.virnucpro ]; then again=; else again=--force; fi; "
            "virnucpro submit {params.path} -o {params.outdir} $again --wait "
            "--name {wildcards.sample} {params.args} {params.daemon} > {log:q} 2>&1"
