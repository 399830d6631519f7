"""Class tables of the real datasets: CIFAR-100's class names in label order and the CIFAR-100
classes related to CIFAR-10's (the subset chapter 08's asymmetric noise flips among).

Used by chapter 08_asymmetric_noise (through :mod:`nml.chapters`, which re-exports both).
"""

from __future__ import annotations

__all__ = ["CIFAR100_CLASSES", "CIFAR100_RELATED_TO_CIFAR10"]

#: CIFAR-100's class folders in sorted order: a class's index is its position here
#: (nml.data numbers classes by sorted folder name; tests check this against the tarball).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab",
    "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl",
    "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree",
    "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain",
    "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose",
    "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel",
    "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm")

#: The CIFAR-100 classes related to CIFAR-10's: six whole CIFAR-100 superclasses, each the
#: counterpart of CIFAR-10 classes (whole superclasses, so no class is picked by hand). The
#: paper (7.3) restricts noise to the ImageNet-1K classes that WordNet links to CIFAR-100's;
#: with CIFAR-100 upstream and CIFAR-10 downstream the analogue is this subset. CIFAR-10's
#: bird and ship have no CIFAR-100 counterpart.
CIFAR100_RELATED_TO_CIFAR10 = {
    "vehicles 1 (automobile, truck)": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles 2 (automobile, truck, airplane)": ("lawn_mower", "rocket", "streetcar", "tank",
                                                 "tractor"),
    "large carnivores (cat, dog)": ("bear", "leopard", "lion", "tiger", "wolf"),
    "medium-sized mammals (cat, dog)": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "large omnivores and herbivores (deer, horse)": ("camel", "cattle", "chimpanzee", "elephant",
                                                     "kangaroo"),
    "reptiles (frog)": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
}
