#!/usr/bin/env bash
# Mutation score of the core maths: mutmut (pip install mutmut==3.8.1) mutates
# course_lib/{diffusion,guidance,toy,oracles,langevin,flow,sample_metrics,validate}.py one change at a time and runs
# the fast unit tests of those modules against each mutant (setup.cfg [mutmut] lists both).
# Works in a copy of the tree (default /tmp/guidance-lab-mutation, or $1) so the checkout never
# holds a mutants/ folder. Takes tens of minutes on two cores; not part of CI.
# docs/testing.md gives the last measured score and the equivalent mutants.
#
#   bash tools/mutation.sh [WORKDIR] [MUTANT_GLOB ...]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/guidance-lab-mutation}"
shift || true
python -c "import mutmut" 2>/dev/null || { echo "mutmut is not installed: pip install mutmut==3.8.1" >&2; exit 2; }
mkdir -p "$work"
# tracked and new (not ignored) files, as they are in the checkout now
(cd "$repo" && git ls-files -co --exclude-standard -z) | (cd "$repo" && xargs -0 tar -cf - 2>/dev/null) \
    | tar -xf - -C "$work"
cd "$work"
# guidance.py: only the functions of the lessons 00-05 API are measured (later additions have
# their own tests and are not part of this score); every function of the other modules.
guidance_fns="w_to_gamma gamma_to_w w_to_guidance_scale guidance_scale_to_w cfg
model_eps_fn model_cfg_eps_fn classifier_log_prob_grad classifier_guidance classifier_log_prob_fn drop_labels
implicit_classifier_grad _check_time interval autoguidance compose"
# sample_metrics.py: the distances between sample sets (the MNIST judge's functions have their own tests)
metric_fns="_check_samples sliced_wasserstein _sqrtm_psd frechet_gaussians frechet_distance mean_pairwise_distance
relative_error precision_recall"
if [ "$#" -gt 0 ]; then
    names=("$@")
else
    names=("course_lib.diffusion.*" "course_lib.toy.*" "course_lib.oracles.*" "course_lib.langevin.*" "course_lib.flow.*"
           "course_lib.validate.*")
    for fn in $guidance_fns; do names+=("course_lib.guidance.x_${fn}__mutmut_*"); done
    for fn in $metric_fns; do names+=("course_lib.sample_metrics.x_${fn}__mutmut_*"); done
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python -m mutmut run "${names[@]}" || true
python "$repo/tools/mutation_score.py" "$work" "${names[@]}" | tee mutants/score.txt
echo "show a survivor with: (cd $work && python -m mutmut show NAME)"
