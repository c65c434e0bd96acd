"""Data config for the "elf" category: painted elf portraits plus elf cosplay / costume photos.

    data-prep all --config configs/data/elf.py --output /data/elf

See configs/data/witcher.py for what each section means.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = 'elf'
    c.category = 'elf'
    c.root = 'data/elf'
    c.sources = [
        {'url': 'https://www.artstation.com/search?sort_by=relevance&query=elf%20portrait', 'kind': 'painting'},
        {'url': 'https://www.artstation.com/search?sort_by=likes&query=elven%20woman', 'kind': 'painting'},
        {'url': 'https://www.deviantart.com/search?q=elf+portrait+painting', 'kind': 'painting'},
        {'url': 'https://www.deviantart.com/tag/elfportrait', 'kind': 'painting'},
        {'url': 'https://www.pinterest.com/search/pins/?q=elf%20cosplay%20portrait', 'kind': 'photo'},
        {'url': 'https://www.pinterest.com/search/pins/?q=elven%20makeup%20photoshoot', 'kind': 'photo'},
    ]
    c.scrape = dict(sleep='1.0-2.0', sleep_request='1.0', sleep_429='60', retries=4, http_timeout=30.0,
                    max_per_source=400)
    c.clean = dict(min_side=256, reject_monochrome=True, reject_blurry=True)
    # FFHQ-aligned 512 px crops; a face needs a crop square of >= 256 source px (no crop upscaled > 2x)
    c.faces = dict(size=512, max_upscale=2.0)
    c.dedup = dict(phash_threshold=8)      # aligned crops; 'unique' (whole source images) keeps its defaults
    c.build = dict(resolution=512, photo_ratio=0.25, seed=0)
    return c
