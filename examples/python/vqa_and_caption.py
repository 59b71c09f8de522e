"""Ask a VQA model a question about an image, and caption an image (greedy and beam search).

    python3 examples/python/vqa_and_caption.py --vqa runs/vqa --caption runs/cap IMAGE "Is the red object on the left?"
"""
import argparse

import mmkit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vqa", required=True, help="VQA model (mmkit train vqa)")
    ap.add_argument("--caption", required=True, help="captioning model (mmkit train caption)")
    ap.add_argument("image")
    ap.add_argument("question")
    a = ap.parse_args()

    vqa = mmkit.load(a.vqa)
    ans = vqa.answer(a.image, a.question, top_k=3, attention=True)
    print(f"Q: {a.question}\nA: {ans['answer']} (p = {ans['probability']:.3f})")
    for answer, p in ans["top"][1:]:
        print(f"   {answer} {p:.3f}")
    print("attention maps:", ", ".join(f"{label or 'map'} {grid.shape}" for label, grid in ans["attention"]))

    cap = mmkit.load(a.caption)
    greedy = cap.caption(a.image)[0]
    beam = cap.caption(a.image, beam=3)[0]
    print(f"greedy: {greedy['caption']}  (log p {greedy['log_prob']:.2f})")
    print(f"beam 3: {beam['caption']}  (score {beam['score']:.2f})")


if __name__ == "__main__":
    main()
