"""Data config for the "witcher" category: painted fantasy portraits plus cosplay photos.

    data-prep all --config configs/data/witcher.py            # -> data/witcher/{scrape,clean,unique,faces,dedup,build}
    data-prep all --config configs/data/witcher.py --from clean   # re-run from a stage (each stage resumes)

Each source is a gallery-dl URL (ArtStation / Pinterest / DeviantArt search, tag, gallery or board
pages, or plain image URLs) and the kind of picture it yields: 'painting' or 'photo'. The kind
travels with every file (sidecar JSON) to the TFDS 'kind' feature, where build.photo_ratio sets the
photo:painting mix. Sites that need a login (DeviantArt search, some Pinterest boards) take cookies:
scrape.cookies = 'cookies.txt' (exported from a logged-in browser) or scrape.cookies_from_browser =
'firefox', or a gallery-dl config with credentials (scrape.gallery_dl_config). Check access first
with `data-prep scrape --config configs/data/witcher.py --output data/witcher/scrape --probe`.

Stages of `all`: scrape, clean, unique (near-duplicate source images out), faces, dedup (near-duplicate
face crops out), build.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = 'witcher'
    c.category = 'witcher'
    c.root = 'data/witcher'
    c.sources = [
        {'url': 'https://www.artstation.com/search?sort_by=relevance&query=witcher%20portrait', 'kind': 'painting'},
        {'url': 'https://www.artstation.com/search?sort_by=relevance&query=geralt%20of%20rivia', 'kind': 'painting'},
        {'url': 'https://www.deviantart.com/search?q=witcher+portrait', 'kind': 'painting'},
        {'url': 'https://www.deviantart.com/tag/geralt', 'kind': 'painting'},
        {'url': 'https://www.pinterest.com/search/pins/?q=witcher%20cosplay%20portrait', 'kind': 'photo'},
        {'url': 'https://www.pinterest.com/search/pins/?q=geralt%20cosplay', 'kind': 'photo'},
    ]
    # polite defaults: 1-2 s per file, 1 s between API pages, back off a minute on 429
    c.scrape = dict(sleep='1.0-2.0', sleep_request='1.0', sleep_429='60', retries=4, http_timeout=30.0,
                    max_per_source=400)
    c.clean = dict(min_side=256, min_bytes=40 * 1024, reject_monochrome=True, min_colourfulness=10.0,
                   min_tint_residual=6.0, reject_blurry=True, min_sharpness=15.0)
    # FFHQ-aligned 512 px crops; a face needs a crop square of >= 256 source px (no crop upscaled > 2x)
    c.faces = dict(size=512, max_upscale=2.0)
    c.dedup = dict(phash_threshold=8)      # aligned crops; 'unique' (whole source images) keeps its defaults
    c.build = dict(resolution=512, photo_ratio=0.3, seed=0)
    return c
