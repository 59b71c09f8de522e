"""Text-to-image search: index a folder once with CLIP, then query it with text.

    python3 examples/python/text_to_image_search.py MODEL FOLDER INDEX_DIR "a red circle" [-k 5]
"""
import argparse

import mmkit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("folder", help="folder of PNG/JPEG images to index")
    ap.add_argument("index", help="index folder (created; a second run only embeds new images)")
    ap.add_argument("query", help="text query")
    ap.add_argument("-k", type=int, default=5, help="results")
    a = ap.parse_args()

    model = mmkit.load(a.model)
    built = mmkit.Index.build(model, a.folder, a.index)
    print(f"{built['count']} images indexed ({built['embedded']} embedded now)")
    index = mmkit.load_index(a.index, model)
    for hit in index.search(text=a.query, k=a.k):
        print(f"{hit['rank']:2d}  {hit['score']:.4f}  {hit['path']}")


if __name__ == "__main__":
    main()
